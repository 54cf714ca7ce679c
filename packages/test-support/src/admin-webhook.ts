/**
 * The admins' webhook for the console's tests: a real HTTP receiver on
 * 127.0.0.1, a channel the console does not control (issue 10, "out of
 * band"). Each delivery is verified by the `standardwebhooks` package, what
 * a receiver installs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Delivery {
  readonly event: string;
  readonly data: Record<string, unknown>;
  /** Whether the Standard Webhooks signature verified with the receiver's secret. */
  readonly verified: boolean;
}

export interface AdminWebhook {
  readonly url: string;
  readonly deliveries: Delivery[];
  /** The first delivery `match` accepts, waited for up to 30 s. */
  waitFor(match: (d: Delivery) => boolean, what: string): Promise<Delivery>;
  close(): Promise<void>;
}

/** Starts the receiver; `secret` is its target's secret (a raw secret, as the library reads one). */
export async function startAdminWebhook(secret: string): Promise<AdminWebhook> {
  const hook = new Webhook(secret, { format: 'raw' });
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let verified = true;
      try {
        hook.verify(body, req.headers as Record<string, string>);
      } catch {
        verified = false;
      }
      const parsed = JSON.parse(body) as { event: string; data: Record<string, unknown> };
      deliveries.push({ event: parsed.event, data: parsed.data, verified });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    deliveries,
    async waitFor(match, what) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const d = deliveries.find(match);
        if (d !== undefined) return d;
        if (Date.now() > deadline) throw new Error(`no delivery of ${what}: ${JSON.stringify(deliveries)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
