/**
 * Prometheus metrics at `GET /metrics` (docs/operations.md "Monitoring";
 * issue 12), in the text exposition format, through prom-client.
 *
 * Two kinds of figure, so that what a scrape costs does not grow with
 * history:
 * - counters of this process, since it started: HTTP requests by route,
 *   method and status; signer decisions by signer, outcome and code (from
 *   the signed receipts this coordinator accepted: signers listen on
 *   nothing, their receipts are how they report); alerts by code and
 *   severity; intents refused by code. Behind several coordinators, sum them
 *   across instances, as Prometheus does;
 * - gauges read from the shared database at each scrape, over bounded sets
 *   only: intents in each open status (pending to broadcast, never the
 *   confirmed history), open signer jobs and the age of the oldest per
 *   signer, each signer's last poll as this process saw it, the chain
 *   tracker's height against the node's tip.
 *
 * Nothing here carries an amount, an address or a key: a label is a route
 * template, a status, a signer id, a wallet-independent error code.
 */
import { constantTimeEqual, type Millis, type SignerResult, sha256, utf8 } from '@custos/core';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { NotificationEvent, Notifier, SigningPipeline } from './contracts.js';
import type { Store } from './db/repository.js';

export const METRICS_PATH = '/metrics';

/**
 * `GET /metrics`: the exposition, or 401 without the bearer token when one is
 * configured. A failed database read answers 503 (the scrape fails, and
 * Prometheus's `up` says so) without the error's text.
 */
export function registerMetrics(app: FastifyInstance, metrics: CoordinatorMetrics, token?: string): void {
  // Digests compared, so the time taken says nothing of the token, not even its length.
  const expected = token === undefined ? null : sha256(utf8(`Bearer ${token}`));
  app.get(METRICS_PATH, async (req, reply) => {
    if (expected !== null) {
      if (!constantTimeEqual(sha256(utf8(req.headers.authorization ?? '')), expected)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ code: 'NOT_AUTHORIZED', message: '/metrics needs the configured bearer token' });
      }
    }
    let text: string;
    try {
      text = await metrics.render();
    } catch {
      req.log.warn('metrics: the database did not answer');
      return reply.code(503).send({ code: 'UNAVAILABLE', message: 'the database did not answer' });
    }
    return reply
      .code(200)
      .header('content-type', metrics.contentType)
      .header('cache-control', 'no-store')
      .send(text);
  });
}

/** Intent statuses a withdrawal passes through before it ends: a bounded set, counted at each scrape. */
const OPEN_STATUSES = ['pending', 'approved', 'signing', 'signed', 'broadcast'] as const;

export interface CoordinatorMetrics {
  readonly registry: Registry;
  /** One answered HTTP request; `route` is the route's template (`/v1/intents/:id`), never the raw URL. */
  request(route: string, method: string, status: number): void;
  /** The text exposition format, with the database gauges read now. */
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsDeps {
  readonly store: Store;
  readonly clock?: () => Millis;
  /** The chain node's tip, when there is a node (the pipeline's chainStatus). */
  readonly chainHeight?: () => Promise<number | null>;
}

/** The metrics and the two decorators that feed them: {@link observePipeline}, {@link observeNotifier}. */
export interface Metrics extends CoordinatorMetrics {
  decision(signer: string, result: SignerResult): void;
  polled(signer: string): void;
  notified(event: NotificationEvent, data: Record<string, unknown>): void;
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const clock = deps.clock ?? Date.now;
  const registry = new Registry();
  const requests = new Counter({
    name: 'custos_http_requests_total',
    help: 'HTTP requests answered by this coordinator, by route template, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const decisions = new Counter({
    name: 'custos_signer_decisions_total',
    help: "Signer decisions in the signed receipts this coordinator accepted, by signer, outcome and the refusal's code ('' when signed).",
    labelNames: ['signer', 'outcome', 'code'] as const,
    registers: [registry],
  });
  const alerts = new Counter({
    name: 'custos_alerts_total',
    help: 'Alerts raised by this coordinator (its own and those signers reported), by code and severity.',
    labelNames: ['code', 'severity'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'custos_intents_refused_total',
    help: 'Intents this coordinator moved to refused, by code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const lastPoll = new Map<string, Millis>();
  new Gauge({
    name: 'custos_signer_last_poll_age_seconds',
    help: 'Seconds since each signer last asked this coordinator for jobs (its heartbeat).',
    labelNames: ['signer'] as const,
    registers: [registry],
    collect() {
      const now = clock();
      for (const [signer, at] of lastPoll) this.set({ signer }, (now - at) / 1000);
    },
  });
  const intents = new Gauge({
    name: 'custos_intents',
    help: 'Intents in each open status, in the shared database.',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const openJobs = new Gauge({
    name: 'custos_signer_jobs_open',
    help: 'Signer jobs queued or handed out and not answered, by signer, in the shared database.',
    labelNames: ['signer'] as const,
    registers: [registry],
  });
  const jobAge = new Gauge({
    name: 'custos_signer_job_oldest_age_seconds',
    help: 'Age of the oldest unanswered job per signer: a signer that stopped polling shows here first.',
    labelNames: ['signer'] as const,
    registers: [registry],
  });
  const height = new Gauge({
    name: 'custos_chain_height',
    help: "Block heights: the chain tracker's last processed block and the node's tip.",
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const lag = new Gauge({
    name: 'custos_chain_lag_blocks',
    help: "Blocks between the node's tip and the tracker's last processed block.",
    registers: [registry],
  });

  /** Reads the database gauges once per scrape, all of them or none (a failed read is the scrape's error). */
  async function readGauges(): Promise<void> {
    const snapshot = await deps.store.metrics.snapshot(OPEN_STATUSES);
    intents.reset();
    for (const status of OPEN_STATUSES) intents.set({ status }, snapshot.intents[status] ?? 0);
    openJobs.reset();
    jobAge.reset();
    const now = clock();
    for (const j of snapshot.jobs) {
      openJobs.set({ signer: j.signer }, j.open);
      jobAge.set({ signer: j.signer }, Math.max(0, (now - j.oldest) / 1000));
    }
    height.reset();
    lag.reset();
    const node = deps.chainHeight === undefined ? null : await deps.chainHeight().catch(() => null);
    if (snapshot.trackerHeight !== null) height.set({ source: 'tracker' }, snapshot.trackerHeight);
    if (node !== null) height.set({ source: 'node' }, node);
    if (node !== null && snapshot.trackerHeight !== null) lag.set(Math.max(0, node - snapshot.trackerHeight));
  }

  return {
    registry,
    contentType: registry.contentType,
    request(route, method, status) {
      requests.inc({ route, method, status: String(status) });
    },
    decision(signer, result) {
      const r = result.receipt;
      decisions.inc({ signer, outcome: r.outcome, code: r.outcome === 'signed' ? '' : (r.code ?? '') });
    },
    polled(signer) {
      lastPoll.set(signer, clock());
    },
    notified(event, data) {
      if (event === 'alert') {
        alerts.inc({ code: labelOf(data.code), severity: labelOf(data.severity) });
      } else if (event === 'intent.refused') {
        refused.inc({ code: labelOf(data.code) });
      }
    },
    async render() {
      await readGauges();
      return registry.metrics();
    },
  };
}

/** An error code or severity as a label: upper-case words only, anything else 'other' (a label never carries data). */
function labelOf(v: unknown): string {
  return typeof v === 'string' && /^[A-Za-z_]{1,64}$/.test(v) ? v : 'other';
}

/**
 * The pipeline, counting what passes through: each signer's poll (its
 * heartbeat) and each result the pipeline accepted, after it verified the
 * receipt (a result it refuses counts nothing).
 */
export function observePipeline<P extends SigningPipeline>(pipeline: P, metrics: Metrics): P {
  return delegate(pipeline, {
    jobsFor: (signer: string, waitMs: number, signal: AbortSignal) => {
      metrics.polled(signer);
      return pipeline.jobsFor(signer, waitMs, signal);
    },
    acceptResult: async (signer: string, result: SignerResult) => {
      await pipeline.acceptResult(signer, result);
      metrics.decision(signer, result);
    },
  });
}

/** The notifier, counting alerts and refusals as they are queued. */
export function observeNotifier<N extends Notifier>(notifier: N, metrics: Metrics): N {
  return delegate(notifier, {
    emit: async (event: NotificationEvent, data: Record<string, unknown>) => {
      metrics.notified(event, data);
      await notifier.emit(event, data);
    },
  });
}

/**
 * `target` with `overrides` in place of some of its methods: every other
 * property is the target's own, its methods called on the target itself (a
 * class instance keeps its fields and private members).
 */
function delegate<T extends object>(target: T, overrides: Readonly<Record<string, unknown>>): T {
  return new Proxy(target, {
    get(t, key) {
      if (typeof key === 'string' && Object.hasOwn(overrides, key)) return overrides[key];
      const value = Reflect.get(t, key, t);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  });
}
