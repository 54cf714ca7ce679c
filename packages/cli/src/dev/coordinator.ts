/**
 * The coordinator of `custos dev`: the server package's startServer, in this
 * process, on the state folder's SQLite file, listening on 127.0.0.1, its log
 * in logs/coordinator.log (the terminal is for the next steps). Signals are
 * handled by `custos dev` itself, which stops the signers first.
 */
import { CustosError, type Digest } from '@custos/core';
import { type RunningServer, startServer } from '@custos/server';
import { pino } from 'pino';

export interface DevCoordinatorOptions {
  readonly sqlitePath: string;
  readonly port: number;
  readonly org: Digest;
  readonly rpc: { readonly url: string; readonly username: string; readonly password: string };
  /** The local EVM chain and the executor's key (issue 9), when it runs. */
  readonly evm?: { readonly chainId: number; readonly rpcUrl: string; readonly executorKey: `0x${string}` };
  readonly logFile: string;
  /** The built approver console to serve at `/` (issue 10). */
  readonly consoleDir?: string;
}

export interface DevCoordinator {
  readonly url: string;
  close(): Promise<void>;
}

export async function startDevCoordinator(opts: DevCoordinatorOptions): Promise<DevCoordinator> {
  const destination = pino.destination({ dest: opts.logFile, mkdir: true, sync: true });
  const logger = pino(
    { level: 'info', redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers.signature'] },
    destination,
  );
  const running: RunningServer = await startServer(
    {
      host: '127.0.0.1',
      port: opts.port,
      sqlitePath: opts.sqlitePath,
      org: opts.org,
      chain: {
        rpcUrl: opts.rpc.url,
        rpcUser: opts.rpc.username,
        rpcPassword: opts.rpc.password,
      },
      ...(opts.evm === undefined
        ? {}
        : {
            evm: {
              [String(opts.evm.chainId)]: { rpcUrl: opts.evm.rpcUrl, executorKey: opts.evm.executorKey },
            },
          }),
      webhooks: [],
      logLevel: 'info',
      // Development pace: pending intents (cancel windows) looked at every second.
      limits: { sweepIntervalMs: 1_000 },
      ...(opts.consoleDir === undefined ? {} : { consoleDir: opts.consoleDir }),
    },
    { logger, handleSignals: false },
  ).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === 'EADDRINUSE') {
      throw new CustosError(
        'UNAVAILABLE',
        `port ${opts.port} is in use: pass --port <n> (0 picks a free one)`,
      );
    }
    throw err;
  });
  return {
    url: running.url,
    close: async () => {
      await running.close();
      destination.flushSync();
    },
  };
}
