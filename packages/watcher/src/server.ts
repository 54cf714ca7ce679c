/**
 * The watcher's one endpoint, `GET /v1/freezes` → `{"freezes":[SignedGovernanceEntry]}`:
 * the freezes it signed, for signers to pull over their own outbound
 * connection as they pull jobs, so a coordinator that withholds a freeze
 * does not keep them from freezing. The entries are signed governance
 * objects that each signer verifies against its own state; nothing here is
 * secret, so the endpoint needs no authentication. Listen on 127.0.0.1 or a
 * private network; anything else is 404.
 *
 * With metrics, `GET /metrics` answers the Prometheus text exposition
 * (metrics.ts): counts and heights, nothing secret either.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalize, type SignedGovernanceEntry } from '@custos/core';
import type { WatcherMetrics } from './metrics.js';

export interface FreezeServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function serveFreezes(
  freezes: () => readonly SignedGovernanceEntry[],
  opts: {
    readonly host?: string;
    readonly port?: number;
    readonly metrics?: Pick<WatcherMetrics, 'render' | 'contentType'>;
  } = {},
): Promise<FreezeServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const metrics = opts.metrics;
    if (req.method === 'GET' && path === '/metrics' && metrics !== undefined) {
      metrics.render().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
          res.end(text);
        },
        () => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(canonicalize({ error: { code: 'UNAVAILABLE', message: 'metrics could not be read' } }));
        },
      );
      return;
    }
    const body =
      req.method === 'GET' && path === '/v1/freezes'
        ? { status: 200, value: { freezes: freezes() } }
        : { status: 404, value: { error: { code: 'NOT_FOUND', message: 'no such route' } } };
    res.writeHead(body.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(canonicalize(body.value));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
