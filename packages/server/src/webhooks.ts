/**
 * Webhooks (docs/api.md "Webhooks"): the Notifier, over the store's outbox.
 *
 * emit() only writes outbox rows, one per configured target that takes the
 * event, in the same database as the decision it reports; a worker delivers
 * them. So a notification is never lost to a crash or a receiver that is
 * down, and the request path never waits on a receiver. Delivery is at least
 * once (store.outbox.due leases a row; a sender that dies leaves it due
 * again): the body carries an `id` receivers deduplicate by.
 *
 * Each POST body is the stored canonical JSON `{"id","event","at","data"}`,
 * signed to the Standard Webhooks convention (standardwebhooks.com), so a
 * receiver verifies it, and refuses replays, with an off-the-shelf library:
 *   webhook-id: the body's `id` (the same on every retry: deduplicate by it)
 *   webhook-timestamp: this attempt's time, in Unix seconds
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
 * The key is the configured secret: a `whsec_<base64>` secret (what Standard
 * Webhooks tooling generates) is the bytes it encodes, any other secret its
 * UTF-8 bytes. The old header, `x-custos-signature: sha256=<hex
 * HMAC-SHA256(secret, body)>`, is still sent for one release and is
 * deprecated: it signs no time, so it cannot refuse a replay. Failures are retried with
 * exponential backoff (1 s doubling to 1 h) up to 20 attempts, then given up
 * (the row stays, with its last error, and is never due again).
 *
 * A URL's userinfo (`https://user:password@host/...`) is sent as HTTP Basic
 * authorization (fetch refuses URLs that carry credentials).
 *
 * Secrets: a target's secret is used for the HMAC and nothing else. Rows name
 * their target by a hash of its URL (a URL may carry a token in its path or
 * query), and errors and logs name only the target's origin and a short
 * reason (an HTTP status, "timed out", a socket error code), never the URL's
 * path, query or credentials, never the secret.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { CustosError, type Millis } from '@custos/core';
import type { NotificationEvent, Notifier } from './contracts.js';
import type { OutboxRecord, Store } from './db/repository.js';
import { errorFields, type Logger, silentLogger, sleep } from './pipeline/support.js';

export interface WebhookTarget {
  readonly url: string;
  /** The HMAC key. Never logged, never stored. */
  readonly secret: string;
  /** The events this target takes; all when absent. */
  readonly events?: readonly NotificationEvent[];
}

export interface NotifierOptions {
  readonly clock?: () => Millis;
  /** How often the worker looks for due rows. Default 1 s. */
  readonly pollMs?: number;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
  /** First retry delay, doubled per failure. Default 1 s. */
  readonly backoffBaseMs?: number;
  /** Longest retry delay. Default 1 h. */
  readonly backoffMaxMs?: number;
  /** Attempts before giving up. Default 20. */
  readonly maxAttempts?: number;
  /** Rows sent per pass, in parallel. Default 20. */
  readonly batch?: number;
  readonly log?: Logger;
}

export interface WebhookNotifier extends Notifier {
  start(): void;
  stop(): Promise<void>;
  /** One delivery pass now; returns how many rows it tried. */
  deliverDue(): Promise<number>;
}

/** When a given-up row is due again: never (the largest time a BIGINT and a JS number both hold). */
const NEVER = Number.MAX_SAFE_INTEGER;
/** The deprecated header (one more release): receivers should check the Standard Webhooks headers. */
export const SIGNATURE_HEADER = 'x-custos-signature';

interface Target {
  readonly key: string;
  /** The URL without its userinfo (fetch refuses URLs with credentials). */
  readonly url: string;
  /** `Basic ...` from the URL's userinfo, if it had any. */
  readonly authorization: string | null;
  readonly origin: string;
  readonly secret: string;
  readonly events: ReadonlySet<NotificationEvent> | null;
}

/**
 * `sha256=<hex HMAC-SHA256(secret, body)>`: the deprecated `x-custos-signature`
 * header, sent beside the Standard Webhooks headers for one release.
 */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** The HMAC key of a secret, as Standard Webhooks reads it: `whsec_<base64>` decoded, else its UTF-8 bytes. */
function hmacKey(secret: string): Buffer {
  if (secret.startsWith('whsec_')) {
    const b64 = secret.slice('whsec_'.length);
    if (/^[A-Za-z0-9+/]+={0,2}$/.test(b64) && b64.length % 4 === 0) return Buffer.from(b64, 'base64');
  }
  return Buffer.from(secret, 'utf8');
}

/**
 * The Standard Webhooks headers of one attempt to send `body` (whose `id` is
 * `id`) at `now`: `webhook-id`, `webhook-timestamp` (Unix seconds) and
 * `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
 */
export function standardWebhookHeaders(
  secret: string,
  id: string,
  body: string,
  now: Millis,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const timestamp = String(Math.floor(now / 1000));
  const mac = createHmac('sha256', hmacKey(secret))
    .update(`${id}.${timestamp}.${body}`, 'utf8')
    .digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
}

/** The body's `id` (every body this notifier writes has one); the outbox row's id for a body without it. */
function messageId(row: OutboxRecord): string {
  try {
    const id = (JSON.parse(row.payload) as { id?: unknown }).id;
    if (typeof id === 'string' && /^[A-Za-z0-9_.:-]{1,128}$/.test(id)) return id;
  } catch {
    // Not JSON: fall through to the row's own id.
  }
  return `custos-outbox-${row.id}`;
}

/** The outbox's name for a target: a hash of its URL, so the database never holds a token in a URL. */
export function targetKey(url: string): string {
  return `webhook:${createHash('sha256').update(url, 'utf8').digest('hex').slice(0, 32)}`;
}

export function createNotifier(
  store: Store,
  targets: readonly WebhookTarget[],
  opts: NotifierOptions = {},
): WebhookNotifier {
  const clock = opts.clock ?? Date.now;
  const log = opts.log ?? silentLogger;
  const pollMs = positive('pollMs', opts.pollMs ?? 1000);
  const timeoutMs = positive('timeoutMs', opts.timeoutMs ?? 10_000);
  const baseMs = positive('backoffBaseMs', opts.backoffBaseMs ?? 1000);
  const maxMs = positive('backoffMaxMs', opts.backoffMaxMs ?? 3_600_000);
  const maxAttempts = positive('maxAttempts', opts.maxAttempts ?? 20);
  const batch = positive('batch', opts.batch ?? 20);

  const byKey = new Map<string, Target>();
  for (const [i, t] of targets.entries()) {
    let url: URL;
    try {
      url = new URL(t.url);
    } catch {
      throw new CustosError('INVALID_VALUE', `webhook target ${i}: the URL is not a valid URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CustosError('INVALID_VALUE', `webhook target ${i}: the URL must be http: or https:`);
    }
    if (typeof t.secret !== 'string' || t.secret.length < 16) {
      throw new CustosError(
        'INVALID_VALUE',
        `webhook target ${i}: the secret must hold at least 16 characters`,
      );
    }
    const key = targetKey(t.url);
    let authorization: string | null = null;
    if (url.username !== '' || url.password !== '') {
      let user: string;
      let password: string;
      try {
        user = decodeURIComponent(url.username);
        password = decodeURIComponent(url.password);
      } catch {
        throw new CustosError(
          'INVALID_VALUE',
          `webhook target ${i}: the URL's credentials are not valid percent-encoding`,
        );
      }
      authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    byKey.set(key, {
      key,
      url: url.href,
      authorization,
      origin: url.origin,
      secret: t.secret,
      events: t.events === undefined ? null : new Set(t.events),
    });
  }

  const backoff = (attempts: number): number => Math.min(maxMs, baseMs * 2 ** Math.min(40, attempts - 1));

  async function send(row: OutboxRecord): Promise<void> {
    const target = byKey.get(row.target);
    const attempts = row.attempts + 1;
    let failure: string;
    if (target === undefined) {
      failure = 'no webhook target with this name is configured on this coordinator';
    } else {
      failure = await post(target, row);
      if (failure === '') {
        await store.outbox.markDelivered(row.id, clock());
        return;
      }
    }
    const giveUp = attempts >= maxAttempts;
    const error = giveUp ? `gave up after ${attempts} attempts: ${failure}` : failure;
    await store.outbox.markFailed(row.id, {
      attempts,
      nextAttemptAt: giveUp ? NEVER : clock() + backoff(attempts),
      error,
    });
    log.warn(
      { notification: row.id, event: row.event, target: target?.origin ?? row.target, attempts, error },
      giveUp ? 'webhook given up' : 'webhook failed; retrying later',
    );
  }

  /** Sends one row; returns '' on a 2xx, else a short reason with nothing secret in it. */
  async function post(target: Target, row: OutboxRecord): Promise<string> {
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...standardWebhookHeaders(target.secret, messageId(row), row.payload, clock()),
          [SIGNATURE_HEADER]: webhookSignature(target.secret, row.payload),
          'x-custos-event': row.event,
          'x-custos-delivery': String(row.id),
          ...(target.authorization === null ? {} : { authorization: target.authorization }),
        },
        body: row.payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      return res.status >= 200 && res.status < 300 ? '' : `${target.origin} answered HTTP ${res.status}`;
    } catch (err) {
      return `${target.origin}: ${reasonOf(err, timeoutMs)}`;
    }
  }

  async function deliverDue(): Promise<number> {
    const rows = await store.outbox.due(clock(), batch, timeoutMs + 30_000);
    await Promise.all(
      rows.map((row) =>
        send(row).catch((err: unknown) => {
          log.error({ ...errorFields(err), notification: row.id }, 'webhook outcome not recorded');
        }),
      ),
    );
    return rows.length;
  }

  let loop: Promise<void> | null = null;
  let stopper: AbortController | null = null;
  const run = async (signal: AbortSignal): Promise<void> => {
    // Bounded by stop(): every pass is bounded (batch rows, each with a timeout).
    while (!signal.aborted) {
      let sent = 0;
      try {
        sent = await deliverDue();
      } catch (err) {
        log.warn(errorFields(err), 'outbox not readable; retrying');
      }
      // A full batch means more may be due: go on at once.
      if (sent < batch) await sleep(pollMs, signal);
    }
  };

  return {
    async emit(event: NotificationEvent, data: Record<string, unknown>): Promise<void> {
      const at = clock();
      const payload = { id: randomUUID(), event, at, data };
      for (const t of byKey.values()) {
        if (t.events !== null && !t.events.has(event)) continue;
        await store.outbox.enqueue({ event, payload, target: t.key, at });
      }
    },
    deliverDue,
    start(): void {
      if (loop !== null) return;
      stopper = new AbortController();
      loop = run(stopper.signal);
    },
    async stop(): Promise<void> {
      stopper?.abort();
      const running = loop;
      loop = null;
      stopper = null;
      if (running !== null) await running;
    },
  };
}

/** Why a request failed, in words that carry no URL and no secret. */
function reasonOf(err: unknown, timeoutMs: number): string {
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(cause.code) ? cause.code : null;
  return code === null ? 'the request failed' : `the request failed (${code})`;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new CustosError('INVALID_VALUE', `${name} must be a positive integer`);
  }
  return value;
}
