/**
 * `custos serve`: the coordinator as a process. Opens the database, builds the
 * governance view, the audit log, the notifier and the signing pipeline, and
 * serves the HTTP app until SIGTERM or SIGINT.
 *
 * Shutdown loses no accepted request: new connections are refused and new
 * requests on open ones get 503 UNAVAILABLE (with `connection: close`), every
 * request already running finishes with its normal answer (fastify close),
 * long-polls are woken and answer at once, then the pipeline's background
 * loops stop, then the notifier, then the database closes. A second signal
 * while shutting down does not cut it short; the orchestrator's kill timeout
 * is the bound.
 *
 * The pipeline and the notifier are their own modules (pipeline.ts
 * `createPipeline`, webhooks.ts `createNotifier`), loaded when the server
 * starts; tests and embedders may pass factories instead.
 */
import { CustosError, type Millis } from '@custos/core';
import { type Logger, pino } from 'pino';
import { type Coordinator, createCoordinator } from './app.js';
import { StoreAuditLog } from './audit-log.js';
import type { ChainConfig, ServerConfig, WebhookTarget } from './config.js';
import { loadConsole } from './console.js';
import type { AuditLog, GovernanceView, Notifier, SigningPipeline } from './contracts.js';
import { openDatabase } from './db/connect.js';
import { Store } from './db/repository.js';
import { StoreGovernanceView } from './governance-view.js';
import { createMetrics, observeNotifier, observePipeline } from './metrics.js';
import type { EvmConfig } from './pipeline/evm.js';

export interface PipelineFactoryInput {
  readonly store: Store;
  readonly governance: GovernanceView;
  readonly audit: AuditLog;
  readonly notifier: Notifier;
  readonly clock: () => Millis;
  readonly logger: Logger;
  readonly chain: ChainConfig;
  /** EVM chains for Safe wallets (config `evm`); absent: no Safe is worked on. */
  readonly evm?: EvmConfig;
}
export type PipelineFactory = (input: PipelineFactoryInput) => SigningPipeline | Promise<SigningPipeline>;

/** A notifier with an optional delivery loop. */
export interface NotifierService extends Notifier {
  start?(): void;
  stop?(): Promise<void>;
}
export interface NotifierFactoryInput {
  readonly store: Store;
  readonly clock: () => Millis;
  readonly logger: Logger;
  readonly webhooks: readonly WebhookTarget[];
}
export type NotifierFactory = (input: NotifierFactoryInput) => NotifierService | Promise<NotifierService>;

export interface StartServerOptions {
  readonly createPipeline?: PipelineFactory;
  readonly createNotifier?: NotifierFactory;
  readonly logger?: Logger;
  readonly clock?: () => Millis;
  /** Install SIGTERM and SIGINT handlers (default true; tests turn it off). */
  readonly handleSignals?: boolean;
}

export interface RunningServer {
  /** http://host:port actually bound (port 0 picks a free one). */
  readonly url: string;
  readonly coordinator: Coordinator;
  /** Graceful shutdown (see the module header). Safe to call twice. */
  close(): Promise<void>;
}

/** Starts the coordinator and listens. Throws if the database cannot be opened or the port bound. */
export async function startServer(
  config: ServerConfig,
  opts: StartServerOptions = {},
): Promise<RunningServer> {
  const logger =
    opts.logger ??
    pino({
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers.signature'],
    });
  const clock = opts.clock ?? Date.now;
  const db = await openDatabase({
    ...(config.databaseUrl === undefined ? { sqlitePath: config.sqlitePath } : { url: config.databaseUrl }),
    onBackgroundError: (err) => logger.warn({ err }, 'database connection error'),
  });
  logger.info({ database: db.where }, 'database open');
  let pipeline: SigningPipeline | undefined;
  let notifier: NotifierService | undefined;
  try {
    const store = new Store(db, { now: clock });
    const governance = new StoreGovernanceView(store, config.org === undefined ? {} : { org: config.org });
    const audit = new StoreAuditLog(store, clock);
    const makeNotifier = opts.createNotifier ?? (await loadNotifierFactory());
    notifier = await makeNotifier({ store, clock, logger, webhooks: config.webhooks });
    const makePipeline = opts.createPipeline ?? (await loadPipelineFactory());
    // The pipeline reports through the notifier, so the metrics see both (metrics.ts).
    const metrics =
      config.metrics !== false
        ? createMetrics({ store, clock, chainHeight: () => heightOf(pipeline) })
        : null;
    const told = metrics === null ? notifier : observeNotifier(notifier, metrics);
    const made = await makePipeline({
      store,
      governance,
      audit,
      notifier: told,
      clock,
      logger,
      chain: config.chain,
      ...(config.evm === undefined ? {} : { evm: config.evm }),
    });
    pipeline = metrics === null ? made : observePipeline(made, metrics);
    const coordinator = await createCoordinator({
      store,
      pipeline,
      notifier: told,
      clock,
      logger,
      governance,
      audit,
      ...(config.org === undefined ? {} : { org: config.org }),
      ...(config.limits === undefined ? {} : { limits: config.limits }),
      ...(config.consoleDir === undefined ? {} : { console: await loadConsole(config.consoleDir) }),
      ...(metrics === null ? {} : { metrics }),
      ...(config.metricsToken === undefined ? {} : { metricsToken: config.metricsToken }),
    });
    pipeline.start();
    notifier.start?.();
    const address = await coordinator.app.listen({ host: config.host, port: config.port });
    logger.info({ address }, 'custos coordinator listening');

    const running = { pipeline, notifier };
    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        // Each step runs even if one before it failed; the first failure is reported after.
        let failure: unknown;
        for (const step of [
          () => coordinator.close(),
          () => running.pipeline.stop(),
          async () => running.notifier.stop?.(),
          () => db.close(),
        ]) {
          try {
            await step();
          } catch (err) {
            failure ??= err;
          }
        }
        if (failure !== undefined) throw failure;
        logger.info('custos coordinator stopped');
      })();
      return closing;
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'shutting down: finishing requests in flight');
      close().then(
        () => {
          process.exitCode = 0;
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exitCode = 1;
        },
      );
    };
    if (opts.handleSignals !== false) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    return { url: address, coordinator, close };
  } catch (err) {
    await pipeline?.stop().catch(() => undefined);
    await notifier?.stop?.().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw err;
  }
}

/**
 * The real pipeline (pipeline.ts) over the configured Bitcoin node. Loaded
 * when first needed, so embedders that pass their own factory never load the
 * chain code.
 */
async function loadPipelineFactory(): Promise<PipelineFactory> {
  const { createPipeline } = await import('./pipeline.js');
  return ({ store, governance, audit, notifier, clock, logger, chain, evm }) => {
    if (chain.rpcUrl === undefined) {
      throw new CustosError(
        'INVALID_VALUE',
        'BITCOIN_RPC_URL is not set: the coordinator needs a chain node',
      );
    }
    return createPipeline(
      { store, governance, audit, notifier, clock },
      {
        rpc: {
          url: chain.rpcUrl,
          ...(chain.rpcUser === undefined ? {} : { username: chain.rpcUser }),
          ...(chain.rpcPassword === undefined ? {} : { password: chain.rpcPassword }),
        },
        ...(evm === undefined ? {} : { evm }),
        log: logger,
      },
    );
  };
}

/** The webhook outbox (webhooks.ts), delivering to the configured targets. */
async function loadNotifierFactory(): Promise<NotifierFactory> {
  const { createNotifier } = await import('./webhooks.js');
  return ({ store, clock, logger, webhooks }) => createNotifier(store, webhooks, { clock, log: logger });
}

/** The chain node's tip for the metrics, once the pipeline exists and when its node answers. */
async function heightOf(pipeline: SigningPipeline | undefined): Promise<number | null> {
  if (pipeline === undefined) return null;
  const status = await pipeline.chainStatus();
  return status.ok ? status.height : null;
}
