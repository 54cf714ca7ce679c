/**
 * Governance as verified in this browser from the pinned genesis: the
 * members and their devices (with when each becomes active here), the
 * address book and the wallets. Nothing here comes from a coordinator
 * summary: it is the state core's verifyGovernanceChain computed.
 */

import type { Signed } from '../context.js';
import { keyFingerprint } from '../passkey.js';

function when(at: number, now: number): string {
  return at <= now ? 'active' : `active from ${new Date(at).toISOString()}`;
}

export function GovernanceView(props: { s: Signed }) {
  const { state } = props.s;
  const now = Date.now();
  return (
    <section aria-labelledby="gov-title">
      <h1 id="gov-title">Governance</h1>
      <p>
        {state.name}: {props.s.entries} entries verified from the pinned genesis, head seq {state.seq}{' '}
        <span class="mono">{state.head}</span>.
      </p>
      <h2>Members and devices</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Member</th>
            <th scope="col">Roles</th>
            <th scope="col">Device</th>
            <th scope="col">Key</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {[...state.members.values()].flatMap((m) =>
            [...m.devices.values()].map((d) => (
              <tr key={`${m.id}/${d.device.id}`}>
                <td>{m.id}</td>
                <td>{[...m.roles.keys()].join(', ')}</td>
                <td>
                  {d.device.id} ({d.device.kind === 'webauthn' ? 'passkey' : 'Ed25519'})
                </td>
                <td class="mono">
                  {d.device.kind === 'webauthn'
                    ? keyFingerprint(d.device.publicKey)
                    : d.device.publicKey.slice(0, 16)}
                </td>
                <td>{d.revoked ? 'revoked' : when(d.activeFrom, now)}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
      <h2>Address book</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col">Address</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {[...state.addresses.values()].map((a) => (
            <tr key={`${a.value.chain} ${a.value.address}`}>
              <td>{a.value.label}</td>
              <td class="mono">{a.value.address}</td>
              <td>{when(a.activeFrom, now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Wallets</h2>
      <ul>
        {[...state.wallets.values()].map((w) => (
          <li key={w.id}>
            {w.id} ({w.chain}), assets {w.assets.join(', ')}
          </li>
        ))}
      </ul>
    </section>
  );
}
