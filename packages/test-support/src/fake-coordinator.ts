/**
 * A stand-in coordinator for signer tests, over real HTTP on 127.0.0.1: it
 * queues jobs, serves governance entries, collects results, and checks the
 * signer's RFC 9421 request signatures exactly as the real server must. It can
 * also act as the attacker in the middle (THREATS 6): tests hand it jobs that
 * were rewritten on the way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  canonicalize,
  decode,
  parseSignatureHeaders,
  type SignedCheckpoint,
  type SignedGovernanceEntry,
  type SignerResult,
  signedCheckpoint,
  signerResult,
  verifyRequestSignature,
} from '@custos/core';

export interface FakeCoordinator {
  readonly url: string;
  readonly results: SignerResult[];
  readonly checkpoints: SignedCheckpoint[];
  /** Asks the next poller to countersign this audit head. */
  requestCheckpoint(seq: number, head: string): void;
  /** Requests refused for a bad or missing signature. */
  readonly refusedRequests: number;
  push(job: unknown): void;
  /** Empties the queue (jobs not yet handed out). */
  drain(): void;
  setGovernance(entries: SignedGovernanceEntry[]): void;
  /** Resolves when `n` results in total have arrived (bounded by `timeoutMs`). */
  waitForResults(n: number, timeoutMs?: number): Promise<SignerResult[]>;
  close(): Promise<void>;
}

export async function startFakeCoordinator(
  signerKeys: ReadonlyMap<string, string>,
): Promise<FakeCoordinator> {
  // One queue per signer, as the real coordinator keeps them: a job names its signer.
  const queues = new Map<string, unknown[]>();
  const queueOf = (signer: string) => {
    let q = queues.get(signer);
    if (q === undefined) {
      q = [];
      queues.set(signer, q);
    }
    return q;
  };
  const waiters: (() => void)[] = [];
  const results: SignerResult[] = [];
  const resultWaiters: (() => void)[] = [];
  let governance: SignedGovernanceEntry[] = [];
  const checkpointRequests: { seq: number; head: string }[] = [];
  const checkpoints: SignedCheckpoint[] = [];
  let refused = 0;

  function wake(list: (() => void)[]) {
    for (const w of list.splice(0)) w();
  }

  async function body(req: IncomingMessage): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  }

  function send(res: ServerResponse, status: number, value: unknown) {
    const text = canonicalize(value);
    res.writeHead(status, { 'content-type': 'application/json' }).end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const bytes = await body(req);
    const parsed = parseSignatureHeaders({
      'signature-input': req.headers['signature-input'] as string | undefined,
      signature: req.headers.signature as string | undefined,
    });
    if (!parsed.ok) {
      refused++;
      return send(res, 401, { error: { code: parsed.code, message: parsed.message } });
    }
    const signerId = parsed.value.keyId.replace(/^signer:/, '');
    const key = signerKeys.get(signerId);
    const verified =
      key === undefined
        ? ({ ok: false, code: 'BAD_SIGNATURE', message: 'unknown key' } as const)
        : verifyRequestSignature(
            {
              method: req.method ?? 'GET',
              path: url.pathname,
              query: url.search === '' ? '?' : url.search,
              body: bytes,
            },
            req.headers['content-digest'] as string | undefined,
            parsed.value,
            key,
          );
    if (!verified.ok) {
      refused++;
      return send(res, 401, { error: { code: verified.code, message: verified.message } });
    }
    if (req.method === 'GET' && url.pathname === '/v1/signer/jobs') {
      const wait = Math.min(Number(url.searchParams.get('wait') ?? 0), 2000);
      const queue = queueOf(signerId);
      if (queue.length === 0 && wait > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, wait);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return send(res, 200, { jobs: queue.splice(0, 4), checkpoint: checkpointRequests.shift() ?? null });
    }
    if (req.method === 'GET' && url.pathname === '/v1/governance/entries') {
      const after = Number(url.searchParams.get('after'));
      const upto = Number(url.searchParams.get('upto'));
      return send(res, 200, {
        entries: governance.filter((e) => e.entry.seq > after && e.entry.seq <= upto),
      });
    }
    if (req.method === 'POST' && url.pathname === '/v1/audit/checkpoints') {
      checkpoints.push(decode(signedCheckpoint, bytes));
      wake(resultWaiters);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/signer/results') {
      results.push(decode(signerResult, bytes));
      wake(resultWaiters);
      res.writeHead(204).end();
      return;
    }
    return send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such route' } });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) =>
      send(res, 500, { error: { code: 'INTERNAL', message: String(err) } }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    results,
    checkpoints,
    requestCheckpoint(seq, head) {
      checkpointRequests.push({ seq, head });
    },
    get refusedRequests() {
      return refused;
    },
    push(job) {
      const signer =
        typeof job === 'object' && job !== null ? (job as { signer?: unknown }).signer : undefined;
      queueOf(typeof signer === 'string' ? signer : 'signer-1').push(job);
      wake(waiters);
    },
    drain() {
      queues.clear();
    },
    setGovernance(entries) {
      governance = entries;
    },
    async waitForResults(n, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (results.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${n} results (have ${results.length})`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 500));
          resultWaiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return results.slice(0, n);
    },
    async close() {
      wake(waiters);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
