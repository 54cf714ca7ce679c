/**
 * The start page: the pinned genesis (the root every check here starts
 * from) and the passkeys enrolled in this browser.
 */
import { useState } from 'preact/hooks';
import { keyFingerprint } from '../passkey.js';
import { localDevices, pinGenesis, pinnedGenesis } from '../store.js';

export function HomeView() {
  const [genesis, setGenesis] = useState(pinnedGenesis() ?? '');
  const [saved, setSaved] = useState(pinnedGenesis() !== null);
  const devices = localDevices();
  const submit = (e: Event) => {
    e.preventDefault();
    pinGenesis(genesis);
    setSaved(true);
  };
  return (
    <section aria-labelledby="home-title">
      <h1 id="home-title">Approver console</h1>
      <p>
        This console is trusted for nothing: it checks governance from the genesis you pin, the requester's
        signature on every intent and the transaction itself, and every change you make is signed by your
        passkey and checked again by the signers.
      </p>
      <form onSubmit={submit} class="form">
        <label>
          Pinned genesis digest
          <input
            name="genesis"
            required
            pattern="[0-9a-f]{64}"
            spellcheck={false}
            value={genesis}
            onInput={(e) => {
              setGenesis((e.target as HTMLInputElement).value.trim());
              setSaved(false);
            }}
          />
        </label>
        <button type="submit">Pin</button>
        {saved ? <span class="ok">pinned</span> : null}
      </form>
      <h2>Passkeys on this device</h2>
      {devices.length === 0 ? (
        <p>
          None yet. <a href="#/enrol">Enrol a passkey</a>.
        </p>
      ) : (
        <ul>
          {devices.map((d) => (
            <li key={`${d.member}/${d.device}`}>
              {d.member}/{d.device} — {keyFingerprint(d.passkey.publicKey)}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
