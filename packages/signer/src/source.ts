/**
 * Where jobs come from. The signer makes outbound connections only; it
 * listens on nothing (docs/architecture.md "Interfaces"). Every request it makes is
 * signed with its identity key (RFC 9421), and every response is parsed with
 * the strict JSON parser and then checked again by the signer, because the
 * coordinator is trusted for availability only.
 */
import { randomBytes } from 'node:crypto';
import {
  CustosError,
  canonicalize,
  parseJsonBytes,
  type SignedCheckpoint,
  type SignerResult,
  signRequest,
  toHex,
  utf8,
} from '@custos/core';
import type { GovernanceSource } from './signer.js';

export interface JobSource extends GovernanceSource {
  /**
   * Waits up to `waitMs` for jobs for this signer; returns them as parsed JSON
   * (checked by the signer), with an audit head to countersign if the
   * coordinator asks for one.
   */
  nextJobs(waitMs: number, signal?: AbortSignal): Promise<{ jobs: unknown[]; checkpoint: unknown }>;
  /** Hands a signed result back. */
  submit(result: SignerResult): Promise<void>;
  /** Hands a countersigned audit checkpoint back. */
  submitCheckpoint(checkpoint: SignedCheckpoint): Promise<void>;
}

export interface HttpJobSourceOptions {
  /** Base URL of the coordinator, e.g. http://127.0.0.1:8080 */
  readonly baseUrl: string;
  readonly signerId: string;
  readonly identitySecret: Uint8Array;
  readonly timeoutMs?: number;
  /** Largest response accepted, in bytes (default 16 MiB). */
  readonly maxResponseBytes?: number;
}

/** The coordinator's signer API over HTTP: /v1/signer/jobs, /v1/signer/results, /v1/governance/entries. */
export class HttpJobSource implements JobSource {
  private readonly base: URL;

  constructor(private readonly opts: HttpJobSourceOptions) {
    this.base = new URL(opts.baseUrl);
    if (this.base.username !== '' || this.base.password !== '') {
      throw new CustosError('INVALID_VALUE', 'the coordinator URL must not carry credentials');
    }
  }

  async nextJobs(waitMs: number, signal?: AbortSignal): Promise<{ jobs: unknown[]; checkpoint: unknown }> {
    const body = await this.request(
      'GET',
      '/v1/signer/jobs',
      `?wait=${Math.max(0, Math.floor(waitMs))}`,
      null,
      {
        extraTimeoutMs: waitMs,
        ...(signal === undefined ? {} : { signal }),
      },
    );
    const jobs = (body as { jobs?: unknown }).jobs;
    if (!Array.isArray(jobs))
      throw new CustosError('UNAVAILABLE', 'the coordinator answered without a jobs list');
    return { jobs, checkpoint: (body as { checkpoint?: unknown }).checkpoint ?? null };
  }

  async submitCheckpoint(checkpoint: SignedCheckpoint): Promise<void> {
    await this.request('POST', '/v1/audit/checkpoints', '?', utf8(canonicalize(checkpoint)));
  }

  async governanceEntries(afterSeq: number, uptoSeq: number): Promise<unknown> {
    const body = await this.request(
      'GET',
      '/v1/governance/entries',
      `?after=${afterSeq}&upto=${uptoSeq}`,
      null,
    );
    return (body as { entries?: unknown }).entries;
  }

  async submit(result: SignerResult): Promise<void> {
    await this.request('POST', '/v1/signer/results', '?', utf8(canonicalize(result)));
  }

  private async request(
    method: 'GET' | 'POST',
    path: string,
    query: string,
    body: Uint8Array | null,
    extra: { extraTimeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<unknown> {
    const payload = body ?? new Uint8Array(0);
    const headers = signRequest(
      { method, path, query, body: payload },
      {
        keyId: `signer:${this.opts.signerId}`,
        created: Math.floor(Date.now() / 1000),
        nonce: toHex(randomBytes(16)),
      },
      this.opts.identitySecret,
    );
    const url = new URL(path + (query === '?' ? '' : query), this.base);
    const timeout = AbortSignal.timeout((this.opts.timeoutMs ?? 15_000) + (extra.extraTimeoutMs ?? 0));
    const signal = extra.signal === undefined ? timeout : AbortSignal.any([timeout, extra.signal]);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { ...headers, ...(body === null ? {} : { 'content-type': 'application/json' }) },
        ...(body === null ? {} : { body: payload }),
        signal,
      });
    } catch (err) {
      throw new CustosError('UNAVAILABLE', `the coordinator cannot be reached (${(err as Error).name})`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length > (this.opts.maxResponseBytes ?? 16 << 20)) {
      throw new CustosError('TOO_LARGE', 'the coordinator response is too large');
    }
    if (res.status === 204 || bytes.length === 0) return {};
    const parsed = parseJsonBytes(bytes, { maxBytes: this.opts.maxResponseBytes ?? 16 << 20, maxDepth: 64 });
    if (!res.ok) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
      throw new CustosError('UNAVAILABLE', `coordinator answered ${res.status}: ${String(err?.code ?? '')}`);
    }
    return parsed;
  }
}

/**
 * Signed freezes pulled from the watchers this signer is configured with
 * (issue 12, `watchers` in the signer's configuration): `GET <url>/v1/freezes`
 * over an outbound connection, as jobs are pulled. Each answer is parsed with
 * the strict JSON parser; the signer verifies every entry against its own
 * governance state ({@link Signer.applyWatcherFreeze}), so a watcher, or
 * whoever answers in its place, can at most serve nothing.
 */
export class WatcherFreezeFeed {
  constructor(
    private readonly urls: readonly string[],
    private readonly timeoutMs = 5000,
  ) {}

  /** Every entry each watcher serves, in order; a watcher that fails is reported and skipped. */
  async pull(onError?: (url: string, err: unknown) => void): Promise<unknown[]> {
    const all: unknown[] = [];
    for (const base of this.urls) {
      try {
        const res = await fetch(new URL('/v1/freezes', base), {
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (!res.ok) throw new CustosError('UNAVAILABLE', `the watcher answered ${res.status}`);
        const body = parseJsonBytes(bytes, { maxBytes: 4 << 20, maxDepth: 64 });
        const freezes = (body as { freezes?: unknown }).freezes;
        if (!Array.isArray(freezes))
          throw new CustosError('UNAVAILABLE', 'the watcher answered without a freezes list');
        all.push(...freezes);
      } catch (err) {
        onError?.(base, err);
      }
    }
    return all;
  }
}
