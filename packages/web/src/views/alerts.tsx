/**
 * Alerts, as the audit log verified in this browser records them: the
 * coordinator's and the signers' alerts (`alert`: a refused checkpoint, a
 * signer that caught a tampered job, a Safe transaction nobody proposed), a
 * signer's refusal (`signing.refused`), a refused request's content
 * (`intent.refused`, `approval.refused`, `governance.refused`) and a freeze.
 * They are read from the same hash chain the audit view checks, by the
 * same walk (audit-log.ts), so a coordinator cannot drop one without the
 * check failing here; the code and the signer's message of an intent's
 * refusal are on that intent's page.
 * Critical alerts also go to every admin's webhook, which this console does
 * not control.
 */
import type { AuditEntry } from '@custos/core';
import { useEffect, useState } from 'preact/hooks';
import { verifyAuditLog } from '../audit-log.js';
import { errorText, type Signed } from '../context.js';

/** The audit events this view lists. */
export const ALERT_EVENTS: ReadonlySet<string> = new Set([
  'alert',
  'frozen',
  'signing.refused',
  'intent.refused',
  'approval.refused',
  'governance.refused',
]);

interface Found {
  readonly alerts: readonly AuditEntry[];
  readonly done: number;
  readonly result: { ok: boolean; text: string } | null;
}

/** An intent's page for a subject that starts with an intent id (a signer's refusal or alert about it). */
function intentOf(e: AuditEntry): string | null {
  if (e.event === 'intent.refused') return null; // a refused intent is not stored
  const m = /^([0-9a-f]{64})\b/.exec(e.subject);
  return m === null ? null : (m[1] as string);
}

export function AlertsView(props: { s: Signed }) {
  const { s } = props;
  const [f, setF] = useState<Found>({ alerts: [], done: 0, result: null });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    (async () => {
      const alerts: AuditEntry[] = [];
      let done = 0;
      const r = await verifyAuditLog(
        s,
        (page) => {
          alerts.push(...page.entries.filter((e) => ALERT_EVENTS.has(e.event)));
          done = page.done;
          setF({ alerts: [...alerts], done, result: null });
        },
        () => stop,
      );
      setF({
        alerts,
        done,
        result: r.ok
          ? { ok: true, text: `${alerts.length} found in ${r.entries} audit entries verified here` }
          : { ok: false, text: `the audit log does not verify: ${r.code}: ${r.message}` },
      });
    })().catch((err) => setError(errorText(err)));
    return () => {
      stop = true;
    };
  }, [s]);
  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <p>
        Alerts and refusals from the audit log, newest first, read from the hash chain verified in this
        browser ({f.done} entries so far).
      </p>
      {f.result === null ? null : (
        <p class={f.result.ok ? 'ok' : 'error'} role="status">
          Alerts: {f.result.text}
        </p>
      )}
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Actor</th>
            <th scope="col">Subject</th>
          </tr>
        </thead>
        <tbody>
          {[...f.alerts].reverse().map((e) => {
            const intent = intentOf(e);
            return (
              <tr key={e.seq} class={e.event === 'alert' || e.event === 'frozen' ? 'critical' : undefined}>
                <td>{new Date(e.at).toISOString()}</td>
                <td>{e.event}</td>
                <td>{e.actor}</td>
                <td class="mono">
                  {intent === null ? e.subject : <a href={`#/intent/${intent}`}>{e.subject}</a>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
