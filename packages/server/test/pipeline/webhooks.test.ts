/**
 * Webhooks (docs/api.md "Webhooks") from the outbox, on SQLite and
 * PostgreSQL, to real HTTP receivers on 127.0.0.1:
 * - each event is POSTed as the stored JSON `{id, event, at, data}`, signed
 *   to the Standard Webhooks convention (`webhook-id`, `webhook-timestamp`,
 *   `webhook-signature: v1,<base64 HMAC>`), verified by the `standardwebhooks`
 *   package (the real peer: what a receiver installs), which also refuses a
 *   delivery replayed past its tolerance and one signed with another secret;
 *   the deprecated `x-custos-signature: sha256=<hex HMAC-SHA256(secret,
 *   body)>` is still sent for one release; targets get only their events;
 * - a receiver that fails twice gets the event on the third attempt, same id,
 *   after backoff delays that double;
 * - a receiver that never answers times out; after the last attempt the row
 *   is given up and never due again;
 * - the HMAC secret, and a URL's password, path token and query, never appear
 *   in a log line, a stored error or the outbox's target column.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/pipeline/support.js';
import { createNotifier, type WebhookNotifier } from '../../src/webhooks.js';
import { useBackends } from '../db/backends.js';
import { codeOf } from '../db/fixtures.js';
import { useCleanups, waitFor } from './support/harness.js';

const { backends } = useBackends();
const SECRET = 'whsec-0123456789abcdef-do-not-leak';

interface Received {
  readonly at: number;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  close(): Promise<void>;
}

/** A webhook receiver; `answer` decides the status of the n-th request (0-based), or null to never answer. */
async function receiver(answer: (n: number) => number | null): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = received.length;
      received.push({
        at: performance.now(),
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const status = answer(n);
      if (status !== null) res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * What a receiver does: the Standard Webhooks library verifies the raw body
 * against the three headers with its copy of the secret (a `whsec_` secret
 * as the library reads it, any other as raw UTF-8 bytes), and the old
 * `x-custos-signature` HMAC over the raw body must agree.
 */
function verifies(r: Received, secret: string): boolean {
  const legacy = `sha256=${createHmac('sha256', secret).update(r.body, 'utf8').digest('hex')}`;
  return standard(r, secret) && r.headers['x-custos-signature'] === legacy;
}

function standard(r: Received, secret: string): boolean {
  const hook = secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(secret, { format: 'raw' });
  try {
    hook.verify(r.body, r.headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
}

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const line = (fields: Record<string, unknown>, msg: string): void => {
    lines.push(JSON.stringify({ fields, msg }));
  };
  return { logger: { info: line, warn: line, error: line }, lines };
}

const cleanups = useCleanups();

function track(n: WebhookNotifier): WebhookNotifier {
  cleanups.push(() => n.stop());
  return n;
}

describe.each(backends)('webhooks on $name', (backend) => {
  it('POSTs each event as signed JSON that the receiver verifies over the raw body; each target gets its events only', async () => {
    const { store } = await backend.fresh();
    const all = await receiver(() => 204);
    const alertsOnly = await receiver(() => 200);
    cleanups.push(all.close, alertsOnly.close);
    const otherSecret = 'another-secret-for-alerts-only';
    const notifier = track(
      createNotifier(store, [
        { url: all.url, secret: SECRET },
        { url: alertsOnly.url, secret: otherSecret, events: ['alert'] },
      ]),
    );

    await notifier.emit('intent.created', { intent: 'a'.repeat(64), amount: '1000' });
    await notifier.emit('alert', { code: 'INTENT_SIGNATURE_INVALID', severity: 'critical' });
    expect(await notifier.deliverDue()).toBe(3);

    expect(all.received).toHaveLength(2);
    expect(alertsOnly.received).toHaveLength(1);
    for (const r of all.received) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(verifies(r, SECRET)).toBe(true);
      expect(verifies(r, otherSecret)).toBe(false);
    }
    const [created, alert] = all.received.map((r) => JSON.parse(r.body));
    expect(created).toMatchObject({
      event: 'intent.created',
      data: { intent: 'a'.repeat(64), amount: '1000' },
    });
    expect(Object.keys(created).sort()).toEqual(['at', 'data', 'event', 'id']);
    expect(typeof created.id).toBe('string');
    expect(typeof created.at).toBe('number');
    const alertCopy = alertsOnly.received[0]!;
    expect(verifies(alertCopy, otherSecret)).toBe(true);
    // One event, one id, whichever target receives it: receivers deduplicate by it.
    expect(JSON.parse(alertCopy.body).id).toBe(alert.id);
    for (let id = 1; id <= 3; id++) {
      expect(await store.outbox.get(id)).toMatchObject({ attempts: 1, lastError: null });
      expect((await store.outbox.get(id))?.deliveredAt).not.toBeNull();
    }
    // Delivered rows are not sent again.
    expect(await notifier.deliverDue()).toBe(0);
  });

  it('Standard Webhooks: the standardwebhooks package verifies each delivery (raw and whsec_ secrets), refuses a replay past its tolerance and a delivery under another secret', async () => {
    const { store } = await backend.fresh();
    const raw = await receiver(() => 200);
    const base64 = await receiver(() => 200);
    const stale = await receiver(() => 200);
    cleanups.push(raw.close, base64.close, stale.close);
    // What Standard Webhooks tooling generates: "whsec_" and 24 random bytes in base64.
    const whsec = `whsec_${Buffer.from('0123456789abcdef01234567').toString('base64')}`;
    const notifier = track(
      createNotifier(store, [
        { url: raw.url, secret: SECRET },
        { url: base64.url, secret: whsec },
      ]),
    );
    await notifier.emit('alert', { code: 'UNEXPECTED_OUTPUT', severity: 'critical' });
    expect(await notifier.deliverDue()).toBe(2);
    const [r] = raw.received;
    const [b] = base64.received;
    expect(standard(r!, SECRET)).toBe(true);
    expect(standard(b!, whsec)).toBe(true);
    // One message, one webhook-id on every copy and retry: the body's own id.
    const id = JSON.parse(r!.body).id as string;
    expect(r!.headers['webhook-id']).toBe(id);
    expect(b!.headers['webhook-id']).toBe(id);
    expect(r!.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    expect(Math.abs(Number(r!.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    // Another target's secret, or a body changed in transit, does not verify.
    expect(standard(r!, whsec)).toBe(false);
    expect(standard({ ...r!, body: r!.body.replace('UNEXPECTED_OUTPUT', 'NOTHING_TO_SEE') }, SECRET)).toBe(
      false,
    );

    // A delivery signed ten minutes ago (a replay of a captured request looks the same): the library refuses it.
    const late = await backend.fresh();
    const replaying = track(
      createNotifier(late.store, [{ url: stale.url, secret: SECRET }], { clock: () => Date.now() - 600_000 }),
    );
    await replaying.emit('frozen', { reason: 'replayed' });
    expect(await replaying.deliverDue()).toBe(1);
    expect(stale.received).toHaveLength(1);
    const hook = new Webhook(SECRET, { format: 'raw' });
    expect(() =>
      hook.verify(stale.received[0]!.body, stale.received[0]!.headers as Record<string, string>),
    ).toThrow(/too old/i);
  });

  it('a receiver that fails twice gets the event on the third attempt, with the same id, after doubling delays', async () => {
    const { store } = await backend.fresh();
    const flaky = await receiver((n) => (n === 0 ? 500 : n === 1 ? 503 : 200));
    cleanups.push(flaky.close);
    const notifier = track(
      createNotifier(store, [{ url: flaky.url, secret: SECRET }], { pollMs: 10, backoffBaseMs: 80 }),
    );
    notifier.start();
    await notifier.emit('transaction.broadcast', { intent: 'b'.repeat(64), txid: 'c'.repeat(64) });
    const row = await waitFor('delivered', async () => {
      const r = await store.outbox.get(1);
      return r?.deliveredAt !== null ? r : undefined;
    });
    expect(row).toMatchObject({ attempts: 3, lastError: null });
    expect(flaky.received).toHaveLength(3);
    expect(new Set(flaky.received.map((r) => r.body)).size).toBe(1);
    expect(flaky.received.every((r) => verifies(r, SECRET))).toBe(true);
    const [a, b, c] = flaky.received.map((r) => r.at);
    // 80 ms after the first failure, 160 ms after the second (timers fire no earlier; allow 5 ms of clock skew).
    expect(b! - a!).toBeGreaterThanOrEqual(75);
    expect(c! - b!).toBeGreaterThanOrEqual(155);
  });

  it('never puts the secret or the URL credentials, token or query in a log line, a stored error or the target column; gives up after the last attempt', async () => {
    const { store } = await backend.fresh();
    const failing = await receiver(() => 500);
    const silent = await receiver(() => null);
    cleanups.push(failing.close, silent.close);
    const closed = await receiver(() => 200);
    await closed.close();
    const leaks = [SECRET, 'hookpass', 'TOKEN-5e3f', 'QUERY-9a1b', 'hookuser'];
    const { logger, lines } = capture();
    const notifier = track(
      createNotifier(
        store,
        [
          {
            url: `http://hookuser:hookpass@127.0.0.1:${failing.port}/hooks/TOKEN-5e3f?key=QUERY-9a1b`,
            secret: SECRET,
          },
          { url: `http://127.0.0.1:${silent.port}/slow/TOKEN-5e3f`, secret: SECRET },
          { url: `http://127.0.0.1:${closed.port}/closed/TOKEN-5e3f`, secret: SECRET },
        ],
        { maxAttempts: 2, backoffBaseMs: 10, timeoutMs: 200, log: logger },
      ),
    );
    await notifier.emit('frozen', { reason: 'test' });
    await notifier.deliverDue();
    await new Promise((r) => setTimeout(r, 30));
    await notifier.deliverDue();

    // The receiver got the credentials as HTTP Basic, and the request it could check.
    expect(failing.received).toHaveLength(2);
    expect(failing.received[0]?.path).toBe('/hooks/TOKEN-5e3f?key=QUERY-9a1b');
    expect(failing.received[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from('hookuser:hookpass').toString('base64')}`,
    );
    expect(verifies(failing.received[0]!, SECRET)).toBe(true);

    const rows = await Promise.all([1, 2, 3].map((id) => store.outbox.get(id)));
    const errors = rows.map((r) => r?.lastError ?? '');
    expect(errors[0]).toBe(`gave up after 2 attempts: http://127.0.0.1:${failing.port} answered HTTP 500`);
    expect(errors[1]).toBe(
      `gave up after 2 attempts: http://127.0.0.1:${silent.port}: timed out after 200 ms`,
    );
    expect(errors[2]).toBe(
      `gave up after 2 attempts: http://127.0.0.1:${closed.port}: the request failed (ECONNREFUSED)`,
    );
    for (const r of rows) {
      expect(r).toMatchObject({ attempts: 2, deliveredAt: null, nextAttemptAt: Number.MAX_SAFE_INTEGER });
      expect(r?.target).toMatch(/^webhook:[0-9a-f]{32}$/);
    }
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const everything = [...lines, ...errors, ...rows.map((r) => r?.target ?? '')].join('\n');
    for (const secret of leaks) expect(everything).not.toContain(secret);
    // Given up: never due again.
    expect(await notifier.deliverDue()).toBe(0);

    // A bad configuration is refused without quoting it.
    const bad = createNotifierError(store, [
      { url: 'ftp://x:hookpass@127.0.0.1/TOKEN-5e3f', secret: SECRET },
    ]);
    expect(await codeOf(bad)).toBe('INVALID_VALUE');
    const short = createNotifierError(store, [{ url: failing.url, secret: 'short' }]);
    expect(await codeOf(short)).toBe('INVALID_VALUE');
    for (const p of [bad, short]) {
      const message = await p.catch((err: Error) => err.message);
      for (const secret of [...leaks, 'short']) expect(String(message)).not.toContain(secret);
    }
  });
});

function createNotifierError(...args: Parameters<typeof createNotifier>): Promise<unknown> {
  return (async () => createNotifier(...args))();
}
