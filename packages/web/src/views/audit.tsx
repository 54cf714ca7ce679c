/**
 * The audit log verified in this browser (THREATS 30), as `custos audit
 * verify` does (audit-log.ts). A progress bar shows how far it got; the
 * first bad entry is named.
 */
import type { AuditEntry } from '@custos/core';
import { useEffect, useState } from 'preact/hooks';
import { verifyAuditLog } from '../audit-log.js';
import { errorText, type Signed } from '../context.js';

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
      let last: AuditEntry[] = [];
      let total: number | null = null;
      let done = 0;
      const r = await verifyAuditLog(
        s,
        (page) => {
          last = [...last, ...page.entries].slice(-10);
          ({ total, done } = page);
          setP({ done, total, result: null, last });
        },
        () => stop,
      );
      setP({
        done,
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
