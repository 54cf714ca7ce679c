/**
 * My pending approvals: the pending intents this member did not request and
 * has not answered, each shown from its signed intent after the requester's
 * signature verified here (cli's reviewIntent), never from a summary.
 */
import { type Review, reviewIntent } from '@custos/cli/review';
import { useEffect, useState } from 'preact/hooks';
import { errorText, type Signed } from '../context.js';
import { readIntentView } from '../wire.js';

export function ApprovalsView(props: { s: Signed }) {
  const { s } = props;
  const [rows, setRows] = useState<Review[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    (async () => {
      const list = (await s.api.get('/v1/intents?status=pending&limit=200')) as { intents: unknown[] };
      const now = Date.now();
      const reviews = list.intents
        .map((v) => readIntentView(v, false))
        .filter((v) => v.intent.intent.requester !== s.device.member)
        .map((view) => reviewIntent({ state: s.state, pinnedGenesis: s.genesis, view, history: [], now }));
      setRows(reviews);
    })().catch((err) => setError(errorText(err)));
  }, [s]);
  return (
    <section aria-labelledby="approvals-title">
      <h1 id="approvals-title">My pending approvals</h1>
      {error === null ? null : (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {rows === null ? (
        <p>Loading and verifying…</p>
      ) : rows.length === 0 ? (
        <p>Nothing waits for you.</p>
      ) : (
        <table>
          <caption class="sr-only">Pending intents</caption>
          <thead>
            <tr>
              <th scope="col">Amount</th>
              <th scope="col">To</th>
              <th scope="col">Wallet</th>
              <th scope="col">Requester</th>
              <th scope="col">Checks</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td class="num">
                  <a href={`#/intent/${r.id}`}>{r.amountText}</a>
                </td>
                <td>
                  {r.destination.label} <span class="mono">{r.intent.to}</span>
                </td>
                <td>{r.intent.wallet}</td>
                <td>{r.intent.requester}</td>
                <td>
                  {r.problems.length > 0 ? (
                    <span class="error">{r.problems.map((p) => p.code).join(', ')}</span>
                  ) : (
                    <span class="ok">signature verified</span>
                  )}
                  {r.warnings.map((w) => (
                    <div key={w.code} class="badge">
                      {w.code}
                    </div>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
