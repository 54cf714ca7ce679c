/**
 * Enrolment: a passkey is created on this device and its public key shown,
 * with a fingerprint, for the admins to register through governance (it
 * becomes usable after the governance delay, as any added device). Nothing is
 * sent anywhere from here: the member hands the device record to an admin,
 * who compares the fingerprint with `custos governance show` before signing.
 */
import { useState } from 'preact/hooks';
import { type EnrolledPasskey, enrolPasskey, keyFingerprint } from '../passkey.js';
import { saveDevice } from '../store.js';

export function EnrolView() {
  const [member, setMember] = useState('');
  const [device, setDevice] = useState('passkey-1');
  const [made, setMade] = useState<EnrolledPasskey | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const passkey = await enrolPasskey(member, location);
      saveDevice({ member, device, passkey });
      setMade(passkey);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const record = made === null ? null : { id: device, ...made };
  return (
    <section aria-labelledby="enrol-title">
      <h1 id="enrol-title">Enrol a passkey</h1>
      <p>
        The passkey stays on this device. Give the device record below to an admin; it signs nothing until
        governance adds it and its delay has passed.
      </p>
      <form onSubmit={submit} class="form">
        <label>
          Member id
          <input
            name="member"
            required
            pattern="[a-z0-9][a-z0-9._-]*"
            value={member}
            onInput={(e) => setMember((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Device id
          <input
            name="device"
            required
            pattern="[a-z0-9][a-z0-9._-]*"
            value={device}
            onInput={(e) => setDevice((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          Create passkey
        </button>
      </form>
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {record === null ? null : (
        <div class="card" data-testid="enrolled">
          <h2>Device record for the admins</h2>
          <p>
            Fingerprint: <strong data-testid="fingerprint">{keyFingerprint(record.publicKey)}</strong>
          </p>
          <pre data-testid="device-record">{JSON.stringify(record, null, 2)}</pre>
        </div>
      )}
    </section>
  );
}
