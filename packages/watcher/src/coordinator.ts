/**
 * The watcher's calls to the coordinator, each RFC 9421-signed by the
 * watcher's device key (`keyid="member:<member>/<device>"`), as the CLI
 * signs its own. The coordinator is trusted for availability only: the
 * governance it serves is verified from the pinned genesis by the watcher,
 * and every answer is parsed with the strict JSON parser.
 */
import { randomBytes } from 'node:crypto';
import {
  type AuditEntry,
  auditEntry,
  CustosError,
  canonicalize,
  type DeviceSigner,
  deviceKeyId,
  governanceEntries,
  parseJsonBytes,
  type SignedGovernanceEntry,
  schema,
  signRequestWith,
  toHex,
  utf8,
} from '@custos/core';
import { type ReceiptsPage, receiptsPage } from './receipts.js';

const auditPage = schema.array(auditEntry, { max: 1000 });

export class CoordinatorClient {
  readonly #base: URL;

  constructor(
    baseUrl: string,
    private readonly device: DeviceSigner,
    private readonly timeoutMs = 15_000,
  ) {
    this.#base = new URL(baseUrl);
    if (this.#base.username !== '' || this.#base.password !== '') {
      throw new CustosError('INVALID_VALUE', 'the coordinator URL must not carry credentials');
    }
  }

  /** Governance entries with seq in (after, head], at most 1000 per call (unverified: the caller verifies). */
  async governanceEntries(after: number): Promise<SignedGovernanceEntry[]> {
    const body = await this.#request('GET', '/v1/governance/entries', `?after=${after}`, null);
    return governanceEntries.parse((body as { entries?: unknown }).entries);
  }

  /** Audit entries from `from`, at most 1000. */
  async audit(from: number): Promise<AuditEntry[]> {
    const body = await this.#request('GET', '/v1/audit', `?from=${from}&limit=1000`, null);
    return auditPage.parse((body as { entries?: unknown }).entries) as AuditEntry[];
  }

  /** The signers' signed receipts for an intent, parsed strictly (unverified: receipts.ts checks each). */
  async receipts(intent: string): Promise<ReceiptsPage> {
    if (!/^[0-9a-f]{64}$/.test(intent)) throw new CustosError('INVALID_VALUE', 'an intent id is a digest');
    return receiptsPage.parse(await this.#request('GET', `/v1/intents/${intent}/receipts`, '?', null));
  }

  /** Delivers a signed entry (the watcher's freeze) as a proposal; the coordinator's answer. */
  async propose(signed: SignedGovernanceEntry): Promise<unknown> {
    return this.#request('POST', '/v1/governance/proposals', '?', utf8(canonicalize(signed)));
  }

  async #request(
    method: 'GET' | 'POST',
    path: string,
    query: string,
    body: Uint8Array | null,
  ): Promise<unknown> {
    const payload = body ?? new Uint8Array(0);
    const headers = await signRequestWith(
      { method, path, query, body: payload },
      {
        keyId: deviceKeyId(this.device),
        created: Math.floor(Date.now() / 1000),
        nonce: toHex(randomBytes(16)),
      },
      (base) => this.device.sign(base),
    );
    let res: Response;
    try {
      res = await fetch(new URL(path + (query === '?' ? '' : query), this.#base), {
        method,
        headers: { ...headers, ...(body === null ? {} : { 'content-type': 'application/json' }) },
        ...(body === null ? {} : { body: payload }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new CustosError('UNAVAILABLE', `the coordinator cannot be reached (${(err as Error).name})`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const parsed = bytes.length === 0 ? {} : parseJsonBytes(bytes, { maxBytes: 16 << 20, maxDepth: 64 });
    if (!res.ok) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
      throw new CustosError('UNAVAILABLE', `coordinator answered ${res.status}: ${String(err?.code ?? '')}`, {
        status: res.status,
        code: String(err?.code ?? ''),
      });
    }
    return parsed;
  }
}
