/**
 * The coordinator's HTTP API as the CLI speaks it (docs/api.md).
 *
 * Every request is signed by the device key (RFC 9421 through core
 * signRequest: keyid `member:<member>/<device>`, a fresh 128-bit nonce,
 * created = now), GETs included: the coordinator answers reads only to
 * members, and no bearer token or cookie exists to steal (THREATS 1-2).
 *
 * The coordinator is trusted for availability only, so its answers are data
 * to check, not facts: bodies go through core's strict JSON parser (duplicate
 * keys, oversized or deep input refused), and every signed object in them
 * (intents, approvals, governance entries, audit entries, checkpoints) through
 * its strict schema. What the signatures say is checked by the commands
 * themselves (review.ts, governance.ts); a refusal comes back as a
 * CustosError with the server's stable code.
 */
import { randomBytes } from 'node:crypto';
import {
  type Address,
  type Amount,
  type AuditEntry,
  auditEntry,
  CustosError,
  canonicalize,
  type DeviceSigner,
  type Digest,
  deviceKeyId,
  type GovernanceEntry,
  type GovernanceSignature,
  governanceEntry,
  governanceSignature,
  intent as intentSchema,
  type JsonValue,
  parseJsonBytes,
  primitives,
  type SignedApproval,
  type SignedBump,
  type SignedCheckpoint,
  type SignedGovernanceEntry,
  type SignedIntent,
  signedApproval,
  signedCheckpoint,
  signedGovernanceEntry,
  signedIntent,
  signIntentWithDevice,
  signRequest,
  signRequestWith,
  signWithDevice,
  toHex,
  utf8,
} from '@custos/core';
import { errorFromWire } from './output.js';

export type { DeviceSigner } from '@custos/core';
export { openSealedDeviceKey, writeSealedDeviceKey } from './device.js';

/** Who signs the requests: a member device (or, for tests and demos, any key id). */
export interface RequestSigner {
  readonly keyId: string;
  readonly secretKey: Uint8Array;
}

function isDeviceSigner(s: RequestSigner | DeviceSigner): s is DeviceSigner {
  return 'sign' in s && typeof s.sign === 'function';
}

export function memberSigner(d: { member: string; device: string; secretKey: Uint8Array }): RequestSigner {
  return { keyId: `member:${d.member}/${d.device}`, secretKey: d.secretKey };
}

export interface ClientOptions {
  /** http://127.0.0.1:7340 */
  readonly baseUrl: string;
  /**
   * Signs every request: a key in memory (the CLI's unlocked device), or a
   * DeviceSigner (a service's sealed key file, an HSM, a KMS), which also
   * signs the intents of {@link CustosClient.submitTransfer}.
   */
  readonly signer?: RequestSigner | DeviceSigner | undefined;
  /** Per request (default 30 s). */
  readonly timeoutMs?: number;
  /** Largest answer accepted (default 16 MiB). */
  readonly maxResponseBytes?: number;
}

export interface SendOptions {
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  /** A JSON value (sent as its RFC 8785 form) or raw bytes. */
  readonly body?: unknown;
  /** Sign the request (default true when the client has a signer). */
  readonly sign?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface PreparedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | null;
}

export interface WireAnswer {
  readonly status: number;
  /** Parsed strictly; null for an empty body. */
  readonly body: JsonValue | null;
}

export class CustosClient {
  readonly base: URL;

  constructor(private readonly opts: ClientOptions) {
    this.base = new URL(opts.baseUrl);
    if (this.base.username !== '' || this.base.password !== '') {
      throw new CustosError('INVALID_VALUE', 'the coordinator URL must not carry credentials');
    }
  }

  /**
   * Builds (and signs) a request without sending it: what `custos demo
   * attacks` replays. With a DeviceSigner, which signs asynchronously, use
   * {@link prepareAsync}.
   */
  prepare(method: string, path: string, opts: SendOptions = {}): PreparedRequest {
    const signer = this.opts.signer;
    if (signer !== undefined && isDeviceSigner(signer) && opts.sign !== false) {
      throw new TypeError('a DeviceSigner signs asynchronously: use prepareAsync');
    }
    return this.#build(method, path, opts, signer);
  }

  /** {@link prepare} for any signer: a DeviceSigner signs the RFC 9421 signature base, checked against its public key. */
  async prepareAsync(method: string, path: string, opts: SendOptions = {}): Promise<PreparedRequest> {
    const signer = this.opts.signer;
    if (signer === undefined || !isDeviceSigner(signer) || opts.sign === false) {
      return this.prepare(method, path, opts);
    }
    const unsigned = this.#build(method, path, opts, undefined);
    const headers = await signRequestWith(
      { method, path, query: unsigned.query, body: unsigned.body ?? new Uint8Array(0) },
      { keyId: deviceKeyId(signer), created: Math.floor(Date.now() / 1000), nonce: toHex(randomBytes(16)) },
      (base) => signWithDevice(signer, base),
    );
    return {
      method: unsigned.method,
      url: unsigned.url,
      headers: { ...unsigned.headers, ...headers },
      body: unsigned.body,
    };
  }

  #build(
    method: string,
    path: string,
    opts: SendOptions,
    signer: RequestSigner | DeviceSigner | undefined,
  ): PreparedRequest & { query: string } {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    const query = qs === '' ? '?' : `?${qs}`;
    const body =
      opts.body === undefined
        ? null
        : opts.body instanceof Uint8Array
          ? opts.body
          : utf8(canonicalize(opts.body));
    const headers: Record<string, string> = { accept: 'application/json', ...(opts.headers ?? {}) };
    if (body !== null) headers['content-type'] = 'application/json';
    if (signer !== undefined && !isDeviceSigner(signer) && opts.sign !== false) {
      Object.assign(
        headers,
        signRequest(
          { method, path, query, body: body ?? new Uint8Array(0) },
          { keyId: signer.keyId, created: Math.floor(Date.now() / 1000), nonce: toHex(randomBytes(16)) },
          signer.secretKey,
        ),
      );
    }
    const url = new URL(path + (query === '?' ? '' : query), this.base).toString();
    return { method, url, headers, body, query };
  }

  /** Sends a prepared request; any HTTP status is an answer (no throw), a network failure is UNAVAILABLE. */
  async sendPrepared(req: PreparedRequest): Promise<WireAnswer> {
    let res: Response;
    try {
      res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        // The cast names the buffer kind that both Node's and the DOM's fetch types take (the console type-checks this too).
        ...(req.body === null ? {} : { body: req.body as Uint8Array<ArrayBuffer> }),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
        redirect: 'error',
      });
    } catch (err) {
      if (err instanceof Error && err.name === 'TimeoutError') {
        throw new CustosError('UNAVAILABLE', `the coordinator at ${this.base.origin} did not answer in time`);
      }
      throw new CustosError(
        'UNAVAILABLE',
        `the coordinator at ${this.base.origin} cannot be reached: is the coordinator running? start it with \`npm run dev\` (or \`custos serve\`)`,
      );
    }
    const max = this.opts.maxResponseBytes ?? 16 << 20;
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length > max) throw new CustosError('TOO_LARGE', 'the coordinator answer is too large');
    if (bytes.length === 0) return { status: res.status, body: null };
    let body: JsonValue;
    try {
      body = parseJsonBytes(bytes, { maxBytes: max, maxDepth: 64 });
    } catch (err) {
      if (!res.ok) throw errorFromWire(res.status, undefined, undefined);
      throw err;
    }
    return { status: res.status, body };
  }

  async send(method: string, path: string, opts: SendOptions = {}): Promise<WireAnswer> {
    return this.sendPrepared(await this.prepareAsync(method, path, opts));
  }

  /** Sends and returns the body of a 2xx answer; anything else becomes a CustosError with the server's code. */
  async call(method: string, path: string, opts: SendOptions = {}): Promise<JsonValue | null> {
    const answer = await this.send(method, path, opts);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    throw wireError(answer);
  }

  // ------------------------------------------------------------ health

  async health(): Promise<JsonValue | null> {
    return this.call('GET', '/v1/health', { sign: false });
  }

  /** /v1/ready: 200 or 503, both with a body worth showing. */
  async ready(): Promise<{ ready: boolean; body: JsonValue | null }> {
    const answer = await this.send('GET', '/v1/ready');
    if (answer.status === 200) return { ready: true, body: answer.body };
    if (answer.status === 503) return { ready: false, body: answer.body };
    throw wireError(answer);
  }

  // ------------------------------------------------------------ intents

  async postIntent(
    signed: SignedIntent,
  ): Promise<{ id: Digest; status: string; decision: JsonValue | null }> {
    const body = asRecord(await this.call('POST', '/v1/intents', { body: signed }), 'intent answer');
    return {
      id: primitives.digest.parse(body.id, 'id'),
      status: str(body.status, 'status'),
      decision: body.decision ?? null,
    };
  }

  /**
   * A service requester's one call (issue 13): builds the intent for this
   * client's DeviceSigner (requester and device are its own; a fresh 128-bit
   * nonce; created now, valid `expiresInMs`, an hour by default), signs it
   * with that device, and posts it. Under an automated rule the answer is
   * `approved` at once; otherwise `pending` until approvers decide. A deny is
   * a CustosError with the policy's code (LIMIT_EXCEEDED, LOOKALIKE_ADDRESS...).
   */
  async submitTransfer(t: {
    /** The organization id: the pinned genesis digest. */
    readonly org: string;
    readonly wallet: string;
    readonly chain: string;
    readonly asset: string;
    /** Base units, decimal. */
    readonly amount: string;
    readonly to: string;
    readonly memo?: string;
    readonly expiresInMs?: number;
    /**
     * A batch (issue 13): every output in order; `amount` must then be their
     * sum and `to` the first output's destination.
     */
    readonly outputs?: readonly { readonly to: string; readonly amount: string }[];
    /**
     * An internal transfer (issue 13): the governed wallet `to` belongs to,
     * and for Bitcoin its receive index. `to` must be that wallet's address
     * (derive it with `walletReceiveAddress` of @custos/bitcoin from the
     * governed descriptor); the coordinator and every signer derive it again
     * and refuse DESTINATION_NOT_WALLET otherwise.
     */
    readonly toWallet?: { readonly wallet: string; readonly index?: number };
  }): Promise<{ id: Digest; status: string; decision: JsonValue | null; intent: SignedIntent }> {
    const signer = this.opts.signer;
    if (signer === undefined || !isDeviceSigner(signer)) {
      throw new TypeError(
        'submitTransfer signs the intent with the client DeviceSigner: pass one as `signer`',
      );
    }
    const now = Date.now();
    // Through the schema, so a wrong field is refused here, with its code, before anything is signed.
    const intent = intentSchema.parse({
      v: 1,
      org: t.org,
      wallet: t.wallet,
      chain: t.chain,
      asset: t.asset,
      amount: t.amount as Amount,
      to: t.to as Address,
      requester: signer.member,
      device: signer.device,
      nonce: toHex(randomBytes(16)),
      createdAt: now,
      expiresAt: now + (t.expiresInMs ?? 3_600_000),
      ...(t.memo === undefined ? {} : { memo: t.memo }),
      ...(t.outputs === undefined ? {} : { outputs: t.outputs }),
      ...(t.toWallet === undefined ? {} : { toWallet: t.toWallet }),
    });
    const signed = await signIntentWithDevice(signer, intent);
    return { ...(await this.postIntent(signed)), intent: signed };
  }

  async intent(id: string): Promise<IntentView> {
    return readIntentView(await this.call('GET', `/v1/intents/${encodeURIComponent(id)}`), true);
  }

  async intents(q: {
    status?: string | undefined;
    requester?: string | undefined;
    wallet?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  }): Promise<{ intents: IntentView[]; next: string | null }> {
    const body = asRecord(await this.call('GET', '/v1/intents', { query: q }), 'intent list');
    const list = arr(body.intents, 'intents').map((v) => readIntentView(v, false));
    const next = body.next === null || body.next === undefined ? null : str(body.next, 'next');
    return { intents: list, next };
  }

  /** Every intent matching `q`, page after page (bounded by `max`). */
  async allIntents(
    q: { status?: string; wallet?: string; requester?: string },
    max = 100_000,
  ): Promise<IntentView[]> {
    const out: IntentView[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.intents({ ...q, limit: 200, cursor });
      out.push(...page.intents);
      cursor = page.next ?? undefined;
    } while (cursor !== undefined && out.length < max);
    return out;
  }

  async postApproval(id: string, approval: SignedApproval): Promise<IntentView> {
    return readIntentView(
      await this.call('POST', `/v1/intents/${encodeURIComponent(id)}/approvals`, { body: approval }),
      true,
    );
  }

  /** A fee bump (issue 13) of a broadcast, unconfirmed Bitcoin withdrawal; the coordinator's view of it. */
  async postBump(id: string, bump: SignedBump): Promise<BumpSummary> {
    return readBump(
      await this.call('POST', `/v1/intents/${encodeURIComponent(id)}/bumps`, { body: bump }),
      'bump',
    );
  }

  // ------------------------------------------------------------ governance

  async governanceHead(): Promise<{ seq: number; digest: Digest } | null> {
    const answer = await this.send('GET', '/v1/governance/head');
    if (answer.status === 404) return null;
    if (answer.status < 200 || answer.status >= 300) throw wireError(answer);
    const body = asRecord(answer.body, 'governance head');
    if (body.seq === null || body.seq === undefined) return null;
    return { seq: int(body.seq, 'seq'), digest: primitives.digest.parse(body.digest, 'digest') };
  }

  async governanceEntries(after: number, upto?: number): Promise<SignedGovernanceEntry[]> {
    const body = asRecord(
      await this.call('GET', '/v1/governance/entries', { query: { after, upto } }),
      'governance entries',
    );
    return arr(body.entries, 'entries').map((e, i) => signedGovernanceEntry.parse(e, `entries[${i}]`));
  }

  async postGenesis(signed: SignedGovernanceEntry): Promise<JsonValue | null> {
    return this.call('POST', '/v1/governance/genesis', { body: signed });
  }

  async propose(signed: SignedGovernanceEntry): Promise<{ status: string; id?: string; seq?: number }> {
    const body = asRecord(await this.call('POST', '/v1/governance/proposals', { body: signed }), 'proposal');
    return {
      status: str(body.status, 'status'),
      ...(typeof body.id === 'string' ? { id: body.id } : {}),
      ...(typeof body.seq === 'number' ? { seq: body.seq } : {}),
    };
  }

  async proposals(status = 'open'): Promise<ProposalView[]> {
    const body = asRecord(
      await this.call('GET', '/v1/governance/proposals', { query: { status } }),
      'proposals',
    );
    return arr(body.proposals, 'proposals').map((p, i) => {
      const r = asRecord(p, `proposals[${i}]`);
      return {
        id: str(r.id, 'id'),
        status: str(r.status, 'status'),
        entry: governanceEntry.parse(r.entry, `proposals[${i}].entry`),
        signatures: arr(r.signatures, 'signatures').map((s, j) =>
          governanceSignature.parse(s, `proposals[${i}].signatures[${j}]`),
        ),
      };
    });
  }

  async cosign(id: string, signatures: readonly GovernanceSignature[]): Promise<JsonValue | null> {
    return this.call('POST', `/v1/governance/proposals/${encodeURIComponent(id)}/signatures`, {
      body: { signatures },
    });
  }

  // ------------------------------------------------------------ wallets

  async wallets(): Promise<WalletView[]> {
    const body = asRecord(await this.call('GET', '/v1/wallets'), 'wallets');
    return arr(body.wallets, 'wallets').map((w, i) => {
      const r = asRecord(w, `wallets[${i}]`);
      return {
        id: str(r.id, 'id'),
        chain: str(r.chain, 'chain'),
        label: typeof r.label === 'string' ? r.label : str(r.id, 'id'),
        balance: typeof r.balance === 'string' ? r.balance : String(r.balance ?? '0'),
        utxos: typeof r.utxos === 'number' ? r.utxos : Array.isArray(r.utxos) ? r.utxos.length : 0,
        ...(typeof r.receiveAddress === 'string' ? { receiveAddress: r.receiveAddress } : {}),
        ...(typeof r.receiveIndex === 'number' ? { receiveIndex: r.receiveIndex } : {}),
        ...(Array.isArray(r.balances)
          ? {
              balances: r.balances.map((b, j) => {
                const x = asRecord(b, `wallets[${i}].balances[${j}]`);
                return { asset: str(x.asset, 'asset'), balance: str(x.balance, 'balance') };
              }),
            }
          : {}),
      };
    });
  }

  // ------------------------------------------------------------ audit

  /** Audit entries from `from`; with `wait` ms, a long poll answered once an entry exists (docs/api.md). */
  async audit(
    from: number,
    limit: number,
    wait = 0,
  ): Promise<{ entries: AuditEntry[]; head: { seq: number } | null }> {
    const query = wait > 0 ? { from, limit, wait } : { from, limit };
    const body = asRecord(await this.call('GET', '/v1/audit', { query }), 'audit page');
    const entries = arr(body.entries, 'entries').map((e, i) => auditEntry.parse(e, `entries[${i}]`));
    const head =
      body.head === null || body.head === undefined
        ? null
        : { seq: int(asRecord(body.head, 'head').seq, 'head.seq') };
    return { entries, head };
  }

  async checkpoints(): Promise<SignedCheckpoint[]> {
    const body = asRecord(await this.call('GET', '/v1/audit/checkpoints'), 'checkpoints');
    return arr(body.checkpoints, 'checkpoints').map((c, i) => signedCheckpoint.parse(c, `checkpoints[${i}]`));
  }
}

// ---------------------------------------------------------------- views

/** An intent as the coordinator shows it: the signed intent and approvals are checked by the caller. */
export interface IntentView {
  readonly id: string;
  readonly status: string;
  readonly statusCode: string | null;
  /** Why it was refused, rejected or expired: the coordinator's sentence, or the refusing signer's. */
  readonly statusMessage: string | null;
  readonly intent: SignedIntent;
  readonly approvals: readonly SignedApproval[];
  readonly psbt: string | null;
  /**
   * EVM Safe: the SafeTx the coordinator proposed, as it says (the client
   * decodes and checks it itself, review-evm.ts); null until built.
   */
  readonly safeTx: { readonly proposal: JsonValue; readonly executionTxHash: string | null } | null;
  readonly txid: string | null;
  readonly confirmations: number | null;
  readonly signers: readonly SignerView[];
  /** The coordinator's policy preview: informative only. */
  readonly decision: JsonValue | null;
  /** Fee bumps of a Bitcoin withdrawal (issue 13), oldest first; absent or empty when none. */
  readonly bumps?: readonly BumpSummary[];
}

/** One fee bump: its replacement's txid and fee, what it replaced, and its status. */
export interface BumpSummary {
  readonly id: string;
  /** signing, broadcast, mined, replaced or refused. */
  readonly status: string;
  readonly code: string | null;
  readonly message: string | null;
  readonly txid: string;
  /** Satoshi, decimal. */
  readonly fee: string;
  /** The transaction it replaced when it was broadcast. */
  readonly replaces: string | null;
}

/** One signer's outcome for an intent's job, with its own code and sentence when it refused. */
export interface SignerView {
  readonly signer: string;
  readonly outcome: string | null;
  readonly code: string | null;
  readonly message: string | null;
  /** 'critical' when the signer caught tampering and raised an alert. */
  readonly alert: string | null;
}

export interface ProposalView {
  readonly id: string;
  readonly status: string;
  readonly entry: GovernanceEntry;
  readonly signatures: readonly GovernanceSignature[];
}

export interface WalletView {
  readonly id: string;
  readonly chain: string;
  readonly label: string;
  readonly balance: string;
  readonly utxos: number;
  readonly receiveAddress?: string;
  /** Bitcoin: the receive index of receiveAddress, the next unused (the coordinator's word: availability only). */
  readonly receiveIndex?: number;
  /** EVM Safe: each registered asset's balance in base units. */
  readonly balances?: readonly { readonly asset: string; readonly balance: string }[];
}

export function readIntentView(value: unknown, withApprovals: boolean): IntentView {
  const r = asRecord(value, 'intent view');
  const approvals =
    withApprovals && r.approvals !== undefined
      ? arr(r.approvals, 'approvals').map((a, i) => signedApproval.parse(a, `approvals[${i}]`))
      : [];
  const signers = r.signers === undefined || r.signers === null ? [] : arr(r.signers, 'signers');
  return {
    id: str(r.id, 'id'),
    status: str(r.status, 'status'),
    statusCode: typeof r.statusCode === 'string' ? r.statusCode : null,
    statusMessage: typeof r.statusMessage === 'string' ? r.statusMessage.slice(0, 1000) : null,
    intent: signedIntent.parse(r.intent, 'intent'),
    approvals,
    psbt: typeof r.psbt === 'string' ? r.psbt : null,
    safeTx: safeTxOf(r.safeTx),
    txid: typeof r.txid === 'string' ? r.txid : null,
    confirmations: typeof r.confirmations === 'number' ? r.confirmations : null,
    signers: signers.map((s, i) => {
      const x = asRecord(s, `signers[${i}]`);
      return {
        signer: str(x.signer, 'signer'),
        outcome: typeof x.outcome === 'string' ? x.outcome : null,
        code: typeof x.code === 'string' ? x.code : null,
        message: typeof x.message === 'string' ? x.message.slice(0, 1000) : null,
        alert: typeof x.alert === 'string' ? x.alert : null,
      };
    }),
    decision: (r.decision as JsonValue | undefined) ?? null,
    bumps:
      r.bumps === undefined || r.bumps === null
        ? []
        : arr(r.bumps, 'bumps').map((b, i) => readBump(b, `bumps[${i}]`)),
  };
}

/** A fee bump as the coordinator reports it (availability data: the signers decide). */
function readBump(value: unknown, what: string): BumpSummary {
  const r = asRecord(value, what);
  return {
    id: str(r.id, `${what}.id`),
    status: str(r.status, `${what}.status`),
    code: typeof r.code === 'string' ? r.code : null,
    message: typeof r.message === 'string' ? r.message.slice(0, 1000) : null,
    txid: str(r.txid, `${what}.txid`),
    fee: str(r.fee, `${what}.fee`),
    replaces: typeof r.replaces === 'string' ? r.replaces : null,
  };
}

/** The coordinator's SafeTx block, kept as it came: review-evm.ts checks its shape and every field. */
function safeTxOf(value: JsonValue | undefined): IntentView['safeTx'] {
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const r = value as Record<string, JsonValue>;
  return {
    proposal: r.proposal ?? null,
    executionTxHash: typeof r.executionTxHash === 'string' ? r.executionTxHash : null,
  };
}

function wireError(answer: WireAnswer): CustosError {
  const body = answer.body;
  const error =
    body !== null && typeof body === 'object' && !Array.isArray(body) && typeof body.error === 'object'
      ? (body.error as Record<string, JsonValue> | null)
      : null;
  return errorFromWire(answer.status, error?.code, error?.message);
}

export function asRecord(value: unknown, what: string): Record<string, JsonValue> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CustosError('WRONG_TYPE', `the coordinator sent no object for the ${what}`);
  }
  return value as Record<string, JsonValue>;
}

function arr(value: unknown, what: string): JsonValue[] {
  if (!Array.isArray(value)) throw new CustosError('WRONG_TYPE', `the coordinator sent no list of ${what}`);
  return value as JsonValue[];
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new CustosError('WRONG_TYPE', `the coordinator sent no ${what}`);
  return value;
}

function int(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new CustosError('WRONG_TYPE', `the coordinator sent no whole number for ${what}`);
  }
  return value;
}
