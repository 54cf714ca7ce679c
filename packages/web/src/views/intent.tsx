/**
 * One intent in full, as this browser verified it (cli's reviewIntent: the
 * requester's signature against governance from the pinned genesis, the
 * transaction decoded from the PSBT against the wallet's own descriptor and
 * required to pay exactly what was signed). Approving or rejecting is one
 * passkey assertion over the approval's digest; the button is not offered
 * while a check fails.
 */

import type { IntentView as Wire } from '@custos/cli/client';
import { type Review, reviewIntent } from '@custos/cli/review';
import { type Approval, approvalDigest, approval as approvalSchema } from '@custos/core';
import { useEffect, useState } from 'preact/hooks';
import { postSignedObject } from '../api.js';
import { errorText, type Signed } from '../context.js';
import { assertDigest } from '../passkey.js';
import { readIntentView } from '../wire.js';

function sats(v: bigint | string): string {
  return `${BigInt(v).toLocaleString('en-US')} sat`;
}

export function IntentView(props: { s: Signed; id: string }) {
  const { s, id } = props;
  const [data, setData] = useState<{ view: Wire; review: Review } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    (async () => {
      const view = readIntentView(await s.api.get(`/v1/intents/${id}`), true);
      const wallet = encodeURIComponent(view.intent.intent.wallet);
      const history = (
        (await s.api.get(`/v1/intents?status=confirmed&wallet=${wallet}&limit=200`)) as {
          intents: unknown[];
        }
      ).intents.map((v) => readIntentView(v, false));
      const review = reviewIntent({
        state: s.state,
        pinnedGenesis: s.genesis,
        view,
        history,
        now: Date.now(),
      });
      setData({ view, review });
    })().catch((err) => setError(errorText(err)));
  }, [s, id, tick]);

  const decide = async (decision: 'approve' | 'reject') => {
    if (data === null) return;
    setBusy(true);
    setError(null);
    try {
      const at = Date.now();
      const approval: Approval = approvalSchema.parse({
        v: 1,
        intent: id,
        approver: s.device.member,
        device: s.device.device,
        decision,
        at,
        expiresAt: Math.max(data.review.intent.expiresAt, at + 60_000),
      });
      const signature = await assertDigest(s.device.passkey.credentialId, approvalDigest(approval));
      const answer = (await postSignedObject(`/v1/intents/${id}/approvals`, { approval, signature })) as {
        status: string;
      };
      setDone(`${decision === 'approve' ? 'Approved' : 'Rejected'}: the intent is now ${answer.status}.`);
      setTick((t) => t + 1);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  if (data === null) {
    return (
      <section aria-labelledby="intent-title">
        <h1 id="intent-title">Intent</h1>
        {error === null ? (
          <p>Loading and verifying…</p>
        ) : (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </section>
    );
  }
  const { view, review: r } = data;
  const i = r.intent;
  const d = r.decision;
  const mine = view.approvals.some((a) => a.approval.approver === s.device.member);
  const canDecide =
    view.status === 'pending' && r.problems.length === 0 && i.requester !== s.device.member && !mine;
  return (
    <section aria-labelledby="intent-title">
      <h1 id="intent-title">
        {r.amountText} to {r.destination.label}
      </h1>
      <p>
        Status: <strong data-testid="status">{view.status}</strong>
        {view.txid === null ? null : (
          <>
            {' '}
            — transaction <span class="mono">{view.txid}</span>
            {view.confirmations === null ? null : `, ${view.confirmations} confirmation(s)`}
          </>
        )}
      </p>
      {r.problems.length === 0 ? (
        <p class="ok">Requester's signature and transaction verified in this browser.</p>
      ) : (
        <ul class="error" role="alert">
          {r.problems.map((p) => (
            <li key={p.code}>
              {p.code}: {p.message}
            </li>
          ))}
        </ul>
      )}
      {r.warnings.length === 0 ? null : (
        <ul class="warn">
          {r.warnings.map((w) => (
            <li key={w.code}>
              {w.code}: {w.message}
            </li>
          ))}
        </ul>
      )}
      <dl class="card facts">
        <dt>Amount</dt>
        <dd>{r.amountText}</dd>
        <dt>Destination</dt>
        <dd>
          {r.destination.label} ({r.destination.status}) <span class="mono">{i.to}</span>
        </dd>
        <dt>Wallet</dt>
        <dd>
          {i.wallet} ({i.chain})
        </dd>
        <dt>Requester</dt>
        <dd>
          {r.requesterName} ({i.requester}/{i.device})
        </dd>
        <dt>Policy</dt>
        <dd data-testid="policy">
          {d.kind === 'allow'
            ? `allowed by rule ${d.rules.join(', ')}`
            : d.kind === 'pending'
              ? d.missing.length > 0
                ? `rule ${d.missing[0]?.rule}: waiting for ${d.missing
                    .map(
                      (m) =>
                        `${m.need - m.have} more approval(s) of ${'role' in m.of ? `role ${m.of.role}` : m.of.members.join(', ')}`,
                    )
                    .join('; ')}`
                : `cancel window until ${new Date(d.cancelWindowEndsAt ?? 0).toISOString()}`
              : `denied: ${d.code} ${d.message}`}
        </dd>
        <dt>Approvals</dt>
        <dd>
          {view.approvals.length === 0
            ? 'none yet'
            : view.approvals.map((a) => `${a.approval.approver} (${a.approval.decision})`).join(', ')}
        </dd>
        <dt>Intent digest</dt>
        <dd class="mono">{r.id}</dd>
        <dt>Expires</dt>
        <dd>{new Date(i.expiresAt).toISOString()}</dd>
      </dl>
      {r.safeTx !== null ? (
        <SafeTxSection t={r.safeTx} executed={view.safeTx?.executionTxHash ?? null} />
      ) : (
        <BitcoinTransaction r={r} />
      )}
      {canDecide ? (
        <div class="actions">
          <button type="button" disabled={busy} onClick={() => decide('approve')}>
            Approve with passkey
          </button>
          <button type="button" class="reject" disabled={busy} onClick={() => decide('reject')}>
            Reject with passkey
          </button>
        </div>
      ) : null}
      {done === null ? null : (
        <p class="ok" role="status">
          {done}
        </p>
      )}
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}

/** The Bitcoin transaction decoded from the PSBT in this browser: every output and the fee. */
function BitcoinTransaction(props: { r: Review }) {
  const { r } = props;
  return (
    <>
      <h2>Transaction</h2>
      {r.transaction === null ? (
        <p>Not built yet: the coordinator builds it once the intent is approved; every signer checks it.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Output</th>
              <th scope="col">Address</th>
              <th scope="col">Amount</th>
            </tr>
          </thead>
          <tbody>
            {r.transaction.outputs.map((o, n) => (
              <tr key={o.script}>
                <td>{n}</td>
                <td>
                  <span class="mono">{o.address ?? o.script}</span>
                  {o.isChange ? <span> (change, back to this wallet)</span> : null}
                </td>
                <td class="num">{sats(o.amount)}</td>
              </tr>
            ))}
            <tr>
              <td colSpan={2}>Fee ({r.transaction.vsize} vB)</td>
              <td class="num">{sats(r.transaction.fee)}</td>
            </tr>
          </tbody>
        </table>
      )}
    </>
  );
}

/**
 * A Safe's SafeTx, every field decoded in this browser by the command
 * line's own review code (cli's reviewSafeTx) and its EIP-712 hash computed
 * here: what the owners sign. Anything that is not the plain transfer the
 * intent names is a warning above and a problem that withholds the buttons.
 */
function SafeTxSection(props: { t: NonNullable<Review['safeTx']>; executed: string | null }) {
  const { t, executed } = props;
  return (
    <>
      <h2>Safe transaction</h2>
      <p>
        {t.proposed
          ? "The coordinator's proposal, decoded and hashed in this browser."
          : 'Not built yet: the one plain transfer this intent allows, built in this browser (the coordinator assigns the nonce; every signer checks it).'}
      </p>
      <table data-testid="safe-tx">
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Value</th>
            <th scope="col">Decoded</th>
          </tr>
        </thead>
        <tbody>
          {t.fields.map((f) => (
            <tr key={f.name}>
              <th scope="row">{f.name}</th>
              <td class="mono">{f.value}</td>
              <td>{f.note ?? ''}</td>
            </tr>
          ))}
          <tr>
            <th scope="row">safeTxHash</th>
            <td class="mono" data-testid="safe-tx-hash">
              {t.safeTxHash ?? '(computed once the nonce is assigned)'}
            </td>
            <td>EIP-712, computed here: what each owner signs</td>
          </tr>
          {executed === null ? null : (
            <tr>
              <th scope="row">execution</th>
              <td class="mono">{executed}</td>
              <td>the execTransaction the coordinator sent</td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}
