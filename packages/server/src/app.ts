/**
 * The coordinator's HTTP edge (docs/api.md): a fastify app with every route
 * of the contract, built by `createCoordinator` from its seams (a Store, a
 * SigningPipeline, a Notifier). The routes are declared once in routes.ts as
 * RouteSpecs; this module registers them, in one fixed order per request:
 *
 *   transport   body limit (413) and content type (415), by fastify before
 *               anything is buffered;
 *   identity    RFC 9421 signature, key, rate limit, nonce (auth.ts);
 *   route kind  member routes refuse signer keys and back (NOT_AUTHORIZED);
 *   decoding    query parameters, then the strict JSON parser and the route's
 *               schema (400 with a code) — only for authenticated callers;
 *   the call    coordinator.ts (intents, approvals, governance) or the pipeline.
 *
 * Errors are answered by one handler (http-errors.ts) that never leaks an
 * internal message. While the app closes, requests already running finish
 * with their normal answers and new ones get 503 UNAVAILABLE; long-polls are
 * woken so they end at once.
 */
import { CustosError, type Digest, type Millis } from '@custos/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import { RefusalAuditor, StoreAuditLog } from './audit-log.js';
import {
  type AuthContext,
  Authenticator,
  bodyDigest,
  type Principal,
  refusalAudited,
  requestTarget,
} from './auth.js';
import { decodeBody, installBodyParsing, rawBody, requireJsonBody } from './body.js';
import { type CoordinatorLimits, resolveLimits } from './config.js';
import { type ConsoleAssets, isConsoleRoute, registerConsole } from './console.js';
import type { AuditLog, GovernanceView, Notifier, SigningPipeline } from './contracts.js';
import { Engine, type RequestInfo, type SweepResult } from './coordinator.js';
import type { Store } from './db/repository.js';
import { StoreGovernanceView } from './governance-view.js';
import { errorBody, failureOf, statusOf } from './http-errors.js';
import { type CoordinatorMetrics, METRICS_PATH, registerMetrics } from './metrics.js';
import { buildOpenApi, parseQuery, type QueryShape, type RouteSpec } from './openapi.js';
import { objectClaimOf, SIGNED_OBJECT } from './passkey-writes.js';
import { TokenBuckets } from './rate-limit.js';
import type { RouteContext, RouteDef } from './route.js';
import { defineRoutes } from './routes.js';

export interface CreateCoordinatorOptions {
  readonly store: Store;
  readonly pipeline: SigningPipeline;
  readonly notifier: Notifier;
  /** The coordinator's clock (default Date.now). Give the Store the same one. */
  readonly clock?: () => Millis;
  readonly logger?: Logger;
  readonly limits?: Partial<CoordinatorLimits>;
  /** The pinned organization: a stored genesis with another digest is refused. */
  readonly org?: Digest;
  /** Shared with the pipeline when it was built first (server.ts); made here otherwise. */
  readonly governance?: GovernanceView;
  readonly audit?: AuditLog;
  /** The approver console's built files (console.ts loadConsole), served at `/`; absent: `/` is 404. */
  readonly console?: ConsoleAssets;
  /** Prometheus metrics (metrics.ts), served at `GET /metrics`; absent: `/metrics` is 404. */
  readonly metrics?: CoordinatorMetrics;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>` (compared in constant time). */
  readonly metricsToken?: string;
}

export interface Coordinator {
  readonly app: FastifyInstance;
  readonly governance: GovernanceView;
  readonly audit: AuditLog;
  /** The routes as declared (what the OpenAPI document lists). */
  readonly routes: readonly RouteSpec<unknown, QueryShape>[];
  /** Every route fastify registered, as its onRoute hook saw them (to hold the document to). */
  readonly registered: readonly { readonly method: string; readonly url: string }[];
  /** Looks at every pending intent once now (the background sweep does this every `sweepIntervalMs`). */
  sweep(): Promise<SweepResult>;
  /** Stops accepting requests, lets running ones finish, writes pending audit summaries. */
  close(): Promise<void>;
}

/**
 * Builds the coordinator's HTTP app over a store, a signing pipeline and a
 * notifier. The caller owns those three: `close()` stops the app (and its
 * sweep) only; stop the pipeline and close the database after it (server.ts).
 *
 * @example
 * const c = await createCoordinator({ store, pipeline, notifier });
 * await c.app.listen({ host: '127.0.0.1', port: 8080 });
 */
export async function createCoordinator(opts: CreateCoordinatorOptions): Promise<Coordinator> {
  const clock = opts.clock ?? Date.now;
  const limits = resolveLimits(opts.limits);
  const logger = opts.logger ?? pino({ level: 'silent' });
  const store = opts.store;
  const governance =
    opts.governance ?? new StoreGovernanceView(store, opts.org === undefined ? {} : { org: opts.org });
  const audit = opts.audit ?? new StoreAuditLog(store, clock);
  const refusals = new RefusalAuditor(audit, clock, limits.refusals, logger);
  const authenticator = new Authenticator({
    governance,
    store,
    clock,
    buckets: new TokenBuckets(clock),
    rates: { member: limits.memberRate, signer: limits.signerRate, roles: limits.roleRates },
    refusals,
    windowS: limits.signatureWindowS,
    // A passkey-signed object that does not verify: admins hear of it out of band (issue 10).
    onForgedObject: async (t) => {
      try {
        await opts.notifier.emit('alert', {
          subject: t.keyId,
          signer: null,
          code: 'BAD_SIGNATURE',
          severity: 'critical',
          message: `${t.method} ${t.path}: ${t.message}; a console or relay may be rewriting what ${t.keyId} signed`,
        });
      } catch (err) {
        logger.error({ err }, 'could not queue the alert of a forged object');
      }
    },
  });
  const engine = new Engine({
    store,
    audit,
    notifier: opts.notifier,
    pipeline: opts.pipeline,
    auth: authenticator,
    clock,
    logger,
  });
  const closingController = new AbortController();
  let openapi: Record<string, unknown> = {};
  const ctx: RouteContext = {
    store,
    pipeline: opts.pipeline,
    governance,
    engine,
    authenticator,
    audit,
    clock,
    limits,
    org: opts.org,
    closing: closingController.signal,
    openapi: () => openapi,
  };

  const baseLogger: FastifyBaseLogger = logger;
  const app: FastifyInstance = Fastify({
    loggerInstance: baseLogger,
    exposeHeadRoutes: false,
    return503OnClosing: false,
    bodyLimit: limits.maxLargeBodyBytes,
    requestTimeout: limits.requestTimeoutMs,
    requestIdHeader: false,
    trustProxy: false,
  });
  installBodyParsing(app);

  app.addHook('onRequest', async (_req, reply) => {
    if (closingController.signal.aborted) {
      reply.header('connection', 'close');
      return reply.code(503).send(errorBody('UNAVAILABLE', 'the coordinator is shutting down'));
    }
    return undefined;
  });
  // While closing, every answer ends its connection: a kept-alive socket that turns idle after
  // close() began would otherwise hold the shutdown open until its keep-alive timeout.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closingController.signal.aborted) reply.header('connection', 'close');
    return payload;
  });
  app.setErrorHandler((err, req, reply) => {
    const failure = failureOf(err);
    if (failure.log) req.log.error({ err }, 'request failed');
    const retry = (err as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs;
    if (failure.status === 429 && typeof retry === 'number') {
      reply.header('retry-after', String(Math.max(1, Math.ceil(retry / 1000))));
    }
    return reply.code(failure.status).send(failure.body);
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send(errorBody('NOT_FOUND', 'no such route (docs/api.md lists them)')),
  );

  if (opts.metrics !== undefined) {
    const metrics = opts.metrics;
    app.addHook('onResponse', async (req, reply) => {
      // The route's template, never the raw URL (which carries ids); unmatched requests share one label.
      metrics.request(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode);
    });
  }

  const registered: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    // The console's static files are not part of the API (docs/api.md "The console"), nor is
    // Prometheus's /metrics (docs/api.md "Metrics").
    if (isConsoleRoute(r) || r.url === METRICS_PATH) return;
    for (const method of Array.isArray(r.method) ? r.method : [r.method])
      registered.push({ method, url: r.url });
  });
  const routes = defineRoutes(ctx);
  for (const def of routes) register(app, def, ctx);
  if (opts.console !== undefined) registerConsole(app, opts.console);
  if (opts.metrics !== undefined) registerMetrics(app, opts.metrics, opts.metricsToken);
  const specs = routes.map((r) => r.spec);
  openapi = buildOpenApi(specs, limits.maxBodyBytes);

  let sweeping: Promise<SweepResult> | null = null;
  const sweep = async (): Promise<SweepResult> => {
    while (sweeping !== null) await sweeping.catch(() => undefined);
    const run = governance.current().then((state) => engine.sweep(state));
    sweeping = run;
    try {
      return await run;
    } finally {
      sweeping = null;
    }
  };
  const timer =
    limits.sweepIntervalMs > 0
      ? setInterval(() => {
          if (sweeping !== null) return;
          sweep().catch((err: unknown) => logger.warn({ err }, 'sweep of pending intents failed'));
        }, limits.sweepIntervalMs)
      : undefined;
  timer?.unref();

  await app.ready();
  let closed: Promise<void> | null = null;
  return {
    app,
    governance,
    audit,
    routes: specs,
    registered,
    sweep,
    close() {
      closed ??= (async () => {
        if (timer !== undefined) clearInterval(timer);
        closingController.abort();
        await app.close();
        await (sweeping as Promise<SweepResult> | null)?.catch(() => undefined);
        await refusals.flush();
      })();
      return closed;
    },
  };
}

function register(app: FastifyInstance, def: RouteDef, ctx: RouteContext): void {
  const { spec } = def;
  const limit = spec.bodyLimit ?? ctx.limits.maxBodyBytes;
  app.route({
    method: spec.method,
    url: spec.url,
    bodyLimit: limit,
    handler: async (req, reply) => {
      const raw = rawBody(req);
      if (spec.body !== undefined) requireJsonBody(req);
      const info: RequestInfo = { method: req.method, path: requestTarget(req.raw.url).path, raw };
      let auth: AuthContext | null = null;
      if (spec.auth === 'member' || spec.auth === 'signer' || spec.auth === 'any') {
        // A passkey's change carries its own signature (passkey-writes.ts); all else signs the request.
        const claim =
          req.headers['custos-auth'] === SIGNED_OBJECT ? objectClaimOf(spec.method, spec.url) : undefined;
        auth =
          claim !== undefined && spec.body !== undefined
            ? await ctx.authenticator.authenticateObject(
                req,
                raw,
                claim(decodeBody(spec.body, raw, limit), req.params as Record<string, string>),
              )
            : await ctx.authenticator.authenticate(req, raw);
      }
      try {
        if (auth !== null && (spec.auth === 'member' || spec.auth === 'signer' || spec.auth === 'any')) {
          await requireKind(ctx, spec.auth, auth.principal, info);
        }
        const query = parseQuery(spec.query, req.query);
        // The genesis route decodes its body first: the keys that may sign the request are in it.
        const body =
          spec.body !== undefined && spec.auth !== 'genesis' ? decodeBody(spec.body, raw, limit) : undefined;
        const answer = await def.handler({
          req,
          reply,
          auth,
          body,
          raw,
          query,
          params: (req.params ?? {}) as Record<string, string>,
          info,
        });
        reply.code(answer.status ?? spec.success);
        return answer.body === undefined ? reply.send() : reply.send(answer.body);
      } catch (err) {
        if (auth !== null) await auditRefusal(ctx, auth.principal, info, err, req.log);
        throw err;
      }
    },
  });
}

/**
 * docs/architecture.md "The withdrawal flow": every refusal of an authenticated request is an
 * audit entry, `request.refused` with the caller's key id as actor and
 * `<code> <method> <path>` as subject, and the sha256 of the body as digest
 * (never the body itself). Refusals the Authenticator already wrote are not
 * written again. These are not budgeted like anonymous refusals: the caller
 * proved a registered key and spent a token of its rate limit, which bounds
 * what it can write. 5xx answers are failures, not refusals.
 */
async function auditRefusal(
  ctx: RouteContext,
  p: Principal,
  info: RequestInfo,
  err: unknown,
  log: FastifyBaseLogger,
): Promise<void> {
  if (!(err instanceof CustosError) || refusalAudited(err)) return;
  const status = statusOf(err.code);
  if (status < 400 || status >= 500) return;
  try {
    await ctx.audit.append({
      actor: p.keyId,
      event: 'request.refused',
      subject: `${err.code} ${info.method} ${info.path}`,
      digest: bodyDigest(info.raw),
    });
  } catch (auditErr) {
    log.error({ err: auditErr, code: err.code }, 'could not audit a refused request');
  }
}

/** Member routes take member keys, signer routes signer keys. */
async function requireKind(
  ctx: RouteContext,
  kind: 'member' | 'signer' | 'any',
  p: Principal,
  info: RequestInfo,
): Promise<void> {
  if (p.kind === 'member' && p.readOnly === true && info.method !== 'GET') {
    // A console session key reads only (session.ts): a change is an object its passkey signs.
    await ctx.authenticator.refuseRequest(
      p.keyId,
      'NOT_AUTHORIZED',
      'a session key reads only: a change is sent as an object signed by the passkey',
      info,
    );
  }
  if (kind === 'any' || kind === p.kind) return;
  await ctx.authenticator.refuseRequest(
    p.keyId,
    'NOT_AUTHORIZED',
    kind === 'signer'
      ? 'this call is for signers (keyid signer:<id>)'
      : 'this call is for the devices of members (keyid member:<member>/<device>)',
    info,
  );
}
