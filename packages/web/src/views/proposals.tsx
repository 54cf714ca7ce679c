/**
 * Governance proposals, for admins: every open proposal as a diff against
 * the state verified in this browser, with what it widens and the delay it
 * will wait; a co-signature is one passkey assertion over the proposal's id,
 * which is checked here to be the entry's digest. An admin proposes a new
 * address-book entry the same way. Whatever is proposed, the admins'
 * webhooks hear of it (a channel this console does not control) and a
 * widening change waits out the delay on every signer's own clock.
 */
import {
  type Address,
  type AddressEntry,
  buildEntry,
  type GovernanceEntry,
  type GovernanceSignature,
  governanceDigest,
  governanceEntry,
} from '@custos/core';
import { useEffect, useState } from 'preact/hooks';
import { postSignedObject } from '../api.js';
import { errorText, type Signed } from '../context.js';
import { assertDigest } from '../passkey.js';
import { duration, proposalChange } from '../proposal-diff.js';

interface Proposal {
  readonly id: string;
  readonly seq: number;
  readonly kind: string;
  readonly entry: unknown;
  readonly signatures: readonly GovernanceSignature[];
  readonly warnings: readonly { code: string; message: string }[];
  readonly createdAt: number;
}

interface Checked extends Proposal {
  readonly parsed: GovernanceEntry | null;
  /** Why this browser does not trust it, or null. */
  readonly problem: string | null;
}

function check(p: Proposal, head: string): Checked {
  try {
    const entry = governanceEntry.parse(p.entry);
    if (governanceDigest(entry) !== p.id) {
      return { ...p, parsed: null, problem: 'its id is not the digest of its entry' };
    }
    if (entry.prev !== head)
      return { ...p, parsed: entry, problem: 'not on the governance head verified here' };
    return { ...p, parsed: entry, problem: null };
  } catch (err) {
    return { ...p, parsed: null, problem: errorText(err) };
  }
}

function ProposalCard(props: { s: Signed; p: Checked; onDone: (msg: string) => void }) {
  const { s, p } = props;
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const now = Date.now();
  const change = p.parsed === null ? null : proposalChange(s.state, p.parsed, now);
  const isAdmin = s.state.members.get(s.device.member)?.roles.has('admin') === true;
  const signedByMe = p.signatures.some((g) => g.member === s.device.member);
  const cosign = async () => {
    setBusy(true);
    setError(null);
    try {
      const signature = await assertDigest(s.device.passkey.credentialId, p.id);
      const answer = (await postSignedObject(`/v1/governance/proposals/${p.id}/signatures`, {
        signatures: [{ member: s.device.member, device: s.device.device, signature }],
      })) as { status: string; have?: number; need?: number };
      props.onDone(
        answer.status === 'applied'
          ? `Co-signed: seq ${p.seq} is applied.`
          : `Co-signed: ${answer.have ?? '?'} of ${answer.need ?? '?'} signatures.`,
      );
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <article class="card" aria-labelledby={`p-${p.id}`} data-testid="proposal">
      <h2 id={`p-${p.id}`}>
        seq {p.seq}: {p.kind}
      </h2>
      {p.problem === null ? null : (
        <p role="alert" class="error">
          Not verified: {p.problem}.
        </p>
      )}
      {change === null ? null : (
        <dl class="facts">
          <dt>Effect</dt>
          <dd data-testid="effect">
            {change.effect}: {change.how}
          </dd>
          <dt>Delay after it is applied</dt>
          <dd data-testid="delay">{duration(change.delayMs)}</dd>
          <dt>Signatures</dt>
          <dd>
            {p.signatures.length} of {change.quorum}:{' '}
            {p.signatures.map((g) => `${g.member}/${g.device}`).join(', ')}
          </dd>
          <dt>Entry digest (checked here)</dt>
          <dd class="mono">{p.id}</dd>
        </dl>
      )}
      {p.warnings.map((w) => (
        <p key={w.code} class="warn">
          {w.code}: {w.message}
        </p>
      ))}
      {change === null ? null : (
        <p>The change against governance seq {s.state.seq} (− in force, + proposed):</p>
      )}
      {change === null ? null : (
        <pre class="diff" data-testid="diff">
          {change.lines.map((l, i) => (
            <span key={i} class={l.sign === '+' ? 'add' : l.sign === '-' ? 'del' : undefined}>
              {`${l.sign} ${l.text}\n`}
            </span>
          ))}
        </pre>
      )}
      {isAdmin && !signedByMe && p.problem === null ? (
        <button type="button" disabled={busy} onClick={cosign}>
          Co-sign seq {p.seq} with passkey
        </button>
      ) : null}
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </article>
  );
}

function ProposeAddress(props: { s: Signed; onDone: (msg: string) => void }) {
  const { s } = props;
  const chains = [...new Set([...s.state.wallets.values()].map((w) => w.chain))];
  const [chain, setChain] = useState(chains[0] ?? '');
  const [id, setId] = useState('');
  const [label, setLabel] = useState('');
  const [address, setAddress] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { id, chain, address: address as Address, label } as AddressEntry;
      const entry = buildEntry(s.state, 'address.add', body, Date.now());
      const digest = governanceDigest(entry);
      const signature = await assertDigest(s.device.passkey.credentialId, digest);
      const answer = (await postSignedObject('/v1/governance/proposals', {
        entry,
        signatures: [{ member: s.device.member, device: s.device.device, signature }],
      })) as { status: string; seq: number; have?: number; need?: number };
      props.onDone(
        answer.status === 'applied'
          ? `Proposed and applied: seq ${answer.seq}.`
          : `Proposed seq ${answer.seq}: ${answer.have ?? '?'} of ${answer.need ?? '?'} signatures.`,
      );
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h2>Propose an address-book entry</h2>
      <form class="form" onSubmit={submit}>
        <label>
          Chain
          <select
            name="chain"
            value={chain}
            onChange={(e) => setChain((e.target as HTMLSelectElement).value)}
          >
            {chains.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          Entry id
          <input name="id" required value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Label
          <input
            name="label"
            required
            value={label}
            onInput={(e) => setLabel((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Address
          <input
            name="address"
            required
            class="mono"
            value={address}
            onInput={(e) => setAddress((e.target as HTMLInputElement).value.trim())}
          />
        </label>
        <button type="submit" disabled={busy}>
          Propose with passkey
        </button>
      </form>
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </>
  );
}

export function ProposalsView(props: { s: Signed }) {
  const { s } = props;
  const [list, setList] = useState<Checked[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    s.api
      .get('/v1/governance/proposals?status=open')
      .then((r) => {
        if (live) setList((r as { proposals: Proposal[] }).proposals.map((p) => check(p, s.state.head)));
      })
      .catch((err) => live && setError(errorText(err)));
    return () => {
      live = false;
    };
  }, [s, round]);
  const onDone = (msg: string) => {
    setDone(msg);
    setRound((n) => n + 1);
  };
  return (
    <section aria-labelledby="proposals-title">
      <h1 id="proposals-title">Governance proposals</h1>
      <p>
        Each change is shown against governance seq {s.state.seq} as verified in this browser. A change that
        widens what can be paid waits out its delay on every signer's clock, and every admin's webhook hears
        of it.
      </p>
      {done === null ? null : <p role="status">{done}</p>}
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {list === null ? (
        <p>Loading proposals…</p>
      ) : list.length === 0 ? (
        <p>No open proposal.</p>
      ) : (
        list.map((p) => <ProposalCard key={p.id} s={s} p={p} onDone={onDone} />)
      )}
      {s.state.members.get(s.device.member)?.roles.has('admin') === true ? (
        <ProposeAddress s={s} onDone={onDone} />
      ) : null}
    </section>
  );
}
