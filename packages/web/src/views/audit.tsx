/**
 * The audit log verified in this browser (THREATS 30), as `custos audit
 * verify` does: page by page through core's AuditChainVerifier, with the
 * checkpoints the signers countersigned and the signers' keys from the
 * governance verified here. A progress bar shows how far it got; the first
 * bad entry is named.
 */
import { AuditChainVerifier, type AuditEntry, auditEntry, type Digest, signedCheckpoint } from '@custos/core';
import { useEffect, useState } from 'preact/hooks';
import { errorText, type Signed } from '../context.js';

const PAGE = 1000;

interface Progress {
  readonly done: number;
  readonly total: number | null;
  readonly result: { ok: boolean; text: string } | null;
  readonly last: readonly AuditEntry[];
}

export function AuditView(props: { s: Signed }) {
  const { s } = props;
  const [p, setP] = useState<Progress>({ done: 0, total: null, result: null, last: [] });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    (async () => {
      const raw = (await s.api.get('/v1/audit/checkpoints')) as { checkpoints: unknown[] };
      const checkpoints = raw.checkpoints.map((c) => signedCheckpoint.parse(c));
      const signerKeys = new Map([...s.state.signers.values()].map((sg) => [sg.id, sg.publicKey as string]));
      const verifier = new AuditChainVerifier({ checkpoints, signerKeys, expectedOrg: s.genesis as Digest });
      let from = 0;
      let total: number | null = null;
      let failed: ReturnType<AuditChainVerifier['push']> = null;
      let last: AuditEntry[] = [];
      while (!stop) {
        const page = (await s.api.get(`/v1/audit?from=${from}&limit=${PAGE}`)) as {
          entries: unknown[];
          head: { seq: number } | null;
        };
        if (page.head !== null) total = page.head.seq + 1;
        const entries = page.entries.map((e) => auditEntry.parse(e));
        for (const e of entries) {
          failed = verifier.push(e);
          if (failed !== null) break;
        }
        last = [...last, ...entries].slice(-10);
        setP({ done: verifier.entries, total, result: null, last });
        if (failed !== null || entries.length === 0) break;
        from = entries.at(-1)!.seq + 1;
        if (total !== null && from >= total) break;
      }
      const r = failed ?? verifier.finish();
      setP({
        done: verifier.entries,
        total,
        last,
        result: r.ok
          ? {
              ok: true,
              text: `intact: ${r.entries} entries, ${r.checkpointsVerified} signer checkpoint(s) verified`,
            }
          : { ok: false, text: `${r.code}: ${r.message}` },
      });
    })().catch((err) => setError(errorText(err)));
    return () => {
      stop = true;
    };
  }, [s]);
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <p>Every link of the hash chain and every signer checkpoint is checked in this browser.</p>
      <progress max={p.total ?? 1} value={p.total === null ? 0 : p.done} aria-label="Entries verified" />{' '}
      <span>
        {p.done} / {p.total ?? '?'} entries
      </span>
      {p.result === null ? null : (
        <p class={p.result.ok ? 'ok' : 'error'} role="status">
          Audit log {p.result.text}
        </p>
      )}
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <h2>Latest entries</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Seq</th>
            <th scope="col">When</th>
            <th scope="col">Actor</th>
            <th scope="col">Event</th>
            <th scope="col">Subject</th>
          </tr>
        </thead>
        <tbody>
          {[...p.last].reverse().map((e) => (
            <tr key={e.seq}>
              <td class="num">{e.seq}</td>
              <td>{new Date(e.at).toISOString()}</td>
              <td>{e.actor}</td>
              <td>{e.event}</td>
              <td class="mono">{e.subject}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
