/**
 * Signing in: one passkey assertion certifies a read-only session key
 * (session.ts), then governance is verified here from the pinned genesis.
 */
import { useState } from 'preact/hooks';
import { Api } from '../api.js';
import { errorText, type Signed } from '../context.js';
import { verifiedGovernance } from '../governance.js';
import { startSession } from '../session.js';
import { localDevices, pinnedGenesis } from '../store.js';

export function SignInView(props: { onSignedIn: (s: Signed) => void }) {
  const devices = localDevices();
  const genesis = pinnedGenesis();
  const [chosen, setChosen] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (genesis === null || devices.length === 0) {
    return (
      <section aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in</h1>
        <p>
          Pin the organization's genesis digest on the <a href="#/">start page</a> and{' '}
          <a href="#/enrol">enrol a passkey</a> first.
        </p>
      </section>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const device = devices[chosen]!;
      const session = await startSession(device, genesis);
      const api = new Api(session);
      const { state, entries } = await verifiedGovernance(api, genesis);
      props.onSignedIn({ api, device, genesis, state, entries });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p>
        Your passkey certifies a session key that can only read, for five minutes. Every change you make is
        signed by the passkey itself.
      </p>
      <form class="form" onSubmit={submit}>
        <label>
          Passkey
          <select
            name="device"
            value={chosen}
            onChange={(e) => setChosen(Number((e.target as HTMLSelectElement).value))}
          >
            {devices.map((d, i) => (
              <option key={`${d.member}/${d.device}`} value={i}>
                {d.member}/{d.device}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy}>
          Sign in with passkey
        </button>
      </form>
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}
