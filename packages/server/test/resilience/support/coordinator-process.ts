/**
 * The coordinator as a real process for the resilience tests: the server's
 * own startServer (what `custos serve` runs) with the configuration handed in
 * CUSTOS_RESILIENCE_CONFIG, listening on 127.0.0.1. The signing pipeline is
 * the InertPipeline of the API tests (no chain node: these tests are about the
 * HTTP edge and the database), the notifier keeps nothing.
 *
 * Started with `node --expose-gc --import tsx`, with an IPC channel: it sends
 * {type: 'listening', url} once bound, and answers {type: 'memory'} with its
 * process.memoryUsage() taken right after a full garbage collection, so heap
 * figures compare live objects, not garbage that happened to be waiting.
 * SIGTERM closes it gracefully (startServer's own handler).
 */
import { pino } from 'pino';
import type { ServerConfig } from '../../../src/config.js';
import { startServer } from '../../../src/server.js';
import { InertPipeline } from '../../api/support/inert-pipeline.js';

const config = JSON.parse(process.env.CUSTOS_RESILIENCE_CONFIG ?? '{}') as ServerConfig;
const gc = (globalThis as { gc?: () => void }).gc;

const running = await startServer(config, {
  createPipeline: () => new InertPipeline(),
  createNotifier: () => ({ emit: async () => undefined }),
  logger: pino({ level: config.logLevel }, pino.destination(2)),
});

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'memory') {
    gc?.();
    gc?.();
    process.send?.({ type: 'memory', usage: process.memoryUsage() });
  }
});
// When the test process goes away (the IPC channel closes), do not stay behind.
process.on('disconnect', () => {
  running.close().finally(() => process.exit(0));
});
// The IPC channel must not keep the process alive once startServer's SIGTERM handler has closed everything.
(process.channel as { unref?: () => void } | undefined)?.unref?.();
process.send?.({ type: 'listening', url: running.url });
