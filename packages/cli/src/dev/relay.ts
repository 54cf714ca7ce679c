/**
 * The relay of `custos dev`: signer-2 reaches the coordinator through it, as
 * DMM Bitcoin's withdrawal requests went through a vendor's internal system
 * (docs/architecture.md "Why"). It passes every request and answer through unchanged
 * until `custos demo attacks` arms it: then it rewrites, in the jobs it hands
 * to the signer, the amount and destination of one named intent, exactly what
 * the attackers did in May 2024 (THREATS 6). The signer must refuse
 * (INTENT_SIGNATURE_INVALID): the requester signed the original bytes.
 *
 * Arming is a file in the state folder (relay.json), read for each answer,
 * so the demo needs no control channel into this process. Listens on
 * 127.0.0.1 only. Development only.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { intentDigest, signerJob } from '@custos/core';

export interface RelayArm {
  /** The intent id whose jobs are rewritten. */
  readonly intent: string;
  readonly to: string;
  readonly amount: string;
}

export interface Relay {
  readonly url: string;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 section 7.6.1) and those the relay recomputes. */
const DROP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'upgrade']);

/**
 * The hostile-coordinator arm (issue 9, `custos demo attacks` Bybit, WazirX,
 * Radiant): a whole job the attacker made, handed to the signer behind the
 * relay in place of the coordinator's feed, once; the signer's answer to it
 * is kept by the relay (the attacker) in `resultFile` instead of reaching the
 * coordinator, which never knew of the job.
 */
export interface RelayInject {
  readonly job: unknown;
}

export async function startRelay(opts: {
  target: string;
  armFile: string;
  logFile: string;
  /** Where `custos demo attacks` leaves a job to inject (RelayInject), when it plays the hostile coordinator. */
  injectFile?: string;
  /** Where the signer's result to an injected job is written. */
  resultFile?: string;
}): Promise<Relay> {
  const target = new URL(opts.target);
  const injected = new Set<string>();
  const server: Server = createServer((req, res) => {
    forward(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'the relay cannot reach the coordinator' } }),
      );
    });
  });

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string' && !DROP.has(k)) headers[k] = v;
    }
    const url = new URL(req.url ?? '/', target);
    if (hostile(url, req.method ?? 'GET', body, res)) return;
    const answer = await fetch(url, {
      method: req.method ?? 'GET',
      headers,
      ...(body.length > 0 ? { body } : {}),
      signal: AbortSignal.timeout(90_000),
    });
    let bytes: Buffer = Buffer.from(await answer.arrayBuffer());
    if (url.pathname === '/v1/signer/jobs' && answer.status === 200) bytes = rewrite(bytes);
    const out: Record<string, string> = {};
    answer.headers.forEach((v, k) => {
      if (!DROP.has(k) && k !== 'content-encoding') out[k] = v;
    });
    out['content-length'] = String(bytes.length);
    res.writeHead(answer.status, out);
    res.end(bytes);
  }

  /** Plays the hostile coordinator when armed: answers the signer itself. Returns whether it answered. */
  function hostile(url: URL, method: string, body: Buffer, res: ServerResponse): boolean {
    const { injectFile, resultFile } = opts;
    if (injectFile === undefined || resultFile === undefined) return false;
    if (url.pathname === '/v1/signer/jobs' && method === 'GET' && existsSync(injectFile)) {
      let arm: RelayInject;
      try {
        arm = JSON.parse(readFileSync(injectFile, 'utf8')) as RelayInject;
      } catch {
        return false;
      }
      rmSync(injectFile, { force: true });
      const id = (arm.job as { id?: unknown }).id;
      if (typeof id === 'string') injected.add(id);
      writeFileSync(opts.logFile, `${JSON.stringify({ at: new Date().toISOString(), injected: id })}\n`, {
        flag: 'a',
        mode: 0o600,
      });
      const bytes = Buffer.from(JSON.stringify({ jobs: [arm.job], checkpoint: null }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
      res.end(bytes);
      return true;
    }
    if (url.pathname === '/v1/signer/results' && method === 'POST' && injected.size > 0) {
      let job: unknown;
      try {
        job = (JSON.parse(body.toString('utf8')) as { receipt?: { job?: unknown } }).receipt?.job;
      } catch {
        return false;
      }
      if (typeof job !== 'string' || !injected.has(job)) return false;
      injected.delete(job);
      writeFileSync(resultFile, body, { mode: 0o600 });
      res.writeHead(204);
      res.end();
      return true;
    }
    return false;
  }

  /** The attack: the amount and destination of the armed intent, changed in flight. */
  function rewrite(bytes: Buffer): Buffer {
    if (!existsSync(opts.armFile)) return bytes;
    let arm: RelayArm;
    let feed: { jobs?: unknown[] };
    try {
      arm = JSON.parse(readFileSync(opts.armFile, 'utf8')) as RelayArm;
      feed = JSON.parse(bytes.toString('utf8')) as { jobs?: unknown[] };
    } catch {
      return bytes;
    }
    let changed = false;
    for (const raw of feed.jobs ?? []) {
      let job: ReturnType<typeof signerJob.parse>;
      try {
        job = signerJob.parse(raw);
      } catch {
        continue;
      }
      if (intentDigest(job.intent.intent) !== arm.intent) continue;
      const intent = (raw as { intent: { intent: Record<string, unknown> } }).intent.intent;
      intent.to = arm.to;
      intent.amount = arm.amount;
      changed = true;
      writeFileSync(
        opts.logFile,
        `${JSON.stringify({ at: new Date().toISOString(), job: job.id, signer: job.signer, intent: arm.intent, rewrote: { to: arm.to, amount: arm.amount } })}\n`,
        { flag: 'a', mode: 0o600 },
      );
    }
    return changed ? Buffer.from(JSON.stringify(feed)) : bytes;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('BUG: the relay has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
