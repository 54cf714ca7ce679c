/**
 * A coordinator serving a built console on 127.0.0.1, through the server
 * package's startServer (real HTTP, real SQLite). Its signing pipeline is
 * inert: these tests are about what the coordinator serves, not what it signs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, startServer } from '@custos/server';
import { pino } from 'pino';
import { InertPipeline } from '../../../server/test/api/support/inert-pipeline.js';

export interface Served {
  readonly url: string;
  readonly server: RunningServer;
  close(): Promise<void>;
}

export async function serveConsole(consoleDir: string): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'custos-web-'));
  const server = await startServer(
    {
      host: '127.0.0.1',
      port: 0,
      sqlitePath: join(dir, 'coordinator.db'),
      chain: {},
      webhooks: [],
      logLevel: 'silent',
      limits: { sweepIntervalMs: 0 },
      consoleDir,
    },
    { createPipeline: () => new InertPipeline(), logger: pino({ level: 'silent' }), handleSignals: false },
  );
  return {
    url: server.url,
    server,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
