/**
 * A Bitcoin Core JSON-RPC client over fetch, with no dependency.
 *
 * Custos talks to the operator's own Bitcoin Core (docs/architecture.md, Interfaces); tests
 * and `custos dev` talk to bcoin in regtest. This client therefore uses only
 * methods both serve with the same parameters and results, each checked
 * against a running bcoin and Core's documented API: getblockchaininfo,
 * getblockcount, getblockhash, getblock <hash> false (raw bytes, the one block
 * form both print identically), getrawmempool, getrawtransaction <txid> false,
 * sendrawtransaction <hex> (one parameter: Core's second is maxfeerate,
 * bcoin's is allowhighfees) and estimatesmartfee (Core answers `feerate`,
 * bcoin `fee`; both are read). testmempoolaccept is not used: bcoin lacks it.
 *
 * The node is trusted for availability only, so every answer is validated
 * before use (an unexpected shape is UNAVAILABLE, not a crash further on), a
 * block must hash to the id asked for, and a txid must be the hash of the
 * bytes. Credentials never reach a message, `details` or `cause`: the URL's
 * userinfo is stripped before fetch sees it, and errors name only the origin.
 */
import { CustosError, type ErrorCode, fromHex } from '@custos/core';
import { blockHash, parseTransaction } from './block.js';

export interface BitcoinRpcOptions {
  /** http(s)://host:port/ of the node; `user:password@` in it is accepted and stripped. */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** Per call, default 30 s. */
  readonly timeoutMs?: number;
  /** Largest response body accepted, default 64 MiB (a 4 MB block is 8 MB of hex). */
  readonly maxResponseBytes?: number;
}

export interface ChainInfo {
  /** 'main', 'test', 'testnet4', 'signet' or 'regtest' as the node names it. */
  readonly chain: string;
  readonly blocks: number;
  readonly bestBlockHash: string;
}

const HASH_RE = /^[0-9a-f]{64}$/;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024;
/** Node messages are quoted into details for people; cap them. */
const MAX_MESSAGE_CHARS = 500;

/**
 * Bitcoin Core's RPC error codes (src/rpc/protocol.h) that carry a meaning here. bcoin uses the same
 * numbers where it has the case.
 */
const RPC_INVALID_PARAMETER = -8;
const RPC_INVALID_ADDRESS_OR_KEY = -5;
const RPC_DESERIALIZATION_ERROR = -22;
const RPC_VERIFY_ERROR = -25;
const RPC_VERIFY_REJECTED = -26;
const RPC_VERIFY_ALREADY_IN_CHAIN = -27;
const TX_REJECT_CODES: ReadonlySet<number> = new Set([
  RPC_DESERIALIZATION_ERROR,
  RPC_VERIFY_ERROR,
  RPC_VERIFY_REJECTED,
  RPC_VERIFY_ALREADY_IN_CHAIN,
]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}…` : text;
}

function badAnswer(method: string, what: string): never {
  throw new CustosError('UNAVAILABLE', `chain node answered ${method} with ${what}`, { method });
}

function expectHash(method: string, value: unknown): string {
  if (typeof value !== 'string' || !HASH_RE.test(value))
    badAnswer(method, 'something that is not a 32-byte hex hash');
  return value;
}

function expectHeight(method: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    badAnswer(method, 'something that is not a block height');
  }
  return value;
}

function expectHexBytes(method: string, value: unknown): Uint8Array {
  if (typeof value !== 'string') badAnswer(method, 'something that is not hex');
  try {
    return fromHex(value);
  } catch {
    badAnswer(method, 'something that is not hex');
  }
}

/**
 * Converts a fee rate in BTC per 1000 virtual bytes (as Core and bcoin print it) to whole satoshis per
 * virtual byte, rounded up so a caller never pays under the estimate. Returns null when there is none.
 */
function feeRateSatPerVb(method: string, btcPerKvb: unknown): bigint | null {
  if (btcPerKvb === undefined || btcPerKvb === -1) return null;
  if (typeof btcPerKvb !== 'number' || !Number.isFinite(btcPerKvb) || btcPerKvb <= 0 || btcPerKvb > 1) {
    badAnswer(method, 'a fee rate that is not a positive amount under 1 BTC/kvB');
  }
  // Both nodes print amounts with at most 8 decimals; rounding removes binary floating-point noise.
  const satPerKvb = BigInt(Math.round(btcPerKvb * 1e8));
  const satPerVb = (satPerKvb + 999n) / 1000n;
  return satPerVb > 0n ? satPerVb : 1n;
}

/**
 * A client for one node. Methods return validated values or throw a CustosError: UNAVAILABLE when the
 * node cannot be reached, refuses the credentials or answers something unexpected; CHAIN_REJECTED when
 * it refuses a transaction (its reason in `details.reason`); NOT_FOUND or INVALID_VALUE for the
 * matching RPC errors.
 *
 * @example
 * const rpc = new BitcoinRpc({ url: 'http://127.0.0.1:18443/', username: 'custos', password });
 * const height = await rpc.getBlockCount();
 */
export class BitcoinRpc {
  readonly #endpoint: string;
  /** The URL with userinfo, query and fragment removed; safe to name in a message. */
  readonly #origin: string;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  #nextId = 1;

  constructor(opts: BitcoinRpcOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      // The URL may hold a password: do not quote it.
      throw new CustosError('INVALID_VALUE', 'chain node URL is not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CustosError('INVALID_VALUE', 'chain node URL must be http: or https:');
    }
    let username: string;
    let password: string;
    try {
      username = opts.username ?? decodeURIComponent(url.username);
      password = opts.password ?? decodeURIComponent(url.password);
    } catch {
      throw new CustosError(
        'INVALID_VALUE',
        'credentials in the chain node URL are not valid percent-encoding',
      );
    }
    url.username = '';
    url.password = '';
    this.#endpoint = url.href;
    this.#origin = url.origin;
    this.#authorization =
      username !== '' || password !== ''
        ? `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
        : undefined;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw new CustosError('INVALID_VALUE', 'timeoutMs must be a positive integer');
    }
    this.#timeoutMs = timeoutMs;
    const max = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new CustosError('INVALID_VALUE', 'maxResponseBytes must be a positive integer');
    }
    this.#maxResponseBytes = max;
  }

  /** Where this client connects, without credentials: for logs and messages. */
  get origin(): string {
    return this.#origin;
  }

  /**
   * One JSON-RPC call. The result is returned as the node sent it, unvalidated: callers of this raw
   * form must check its shape (the typed methods below do).
   */
  async call<T = unknown>(method: string, params: unknown[]): Promise<T> {
    const id = this.#nextId++;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.#authorization !== undefined) headers.authorization = this.#authorization;
    const body = JSON.stringify({ jsonrpc: '1.0', id, method, params });
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.#endpoint, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new CustosError(
          'UNAVAILABLE',
          `chain node at ${this.#origin} refused the RPC credentials (HTTP ${res.status})`,
          { method, httpStatus: res.status },
        );
      }
      text = await this.#readBody(res, method);
    } catch (err) {
      if (err instanceof CustosError) throw err;
      const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
      throw new CustosError(
        'UNAVAILABLE',
        timedOut
          ? `chain node at ${this.#origin} did not answer ${method} within ${this.#timeoutMs} ms`
          : `chain node at ${this.#origin} is unreachable`,
        { method },
        { cause: err },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CustosError(
        'UNAVAILABLE',
        `chain node at ${this.#origin} answered ${method} with HTTP ${res.status} and no JSON`,
        { method, httpStatus: res.status },
      );
    }
    if (!isRecord(json) || !('result' in json) || !('error' in json)) {
      badAnswer(method, 'a body that is not a JSON-RPC response');
    }
    if (json.id !== id) badAnswer(method, 'a response to another request');
    // Core answers errors with HTTP 500 (404 for an unknown method) and a JSON-RPC error body; bcoin
    // with HTTP 200. Both put the error in `error`.
    if (json.error !== null) throw this.#rpcError(method, json.error);
    if (res.status !== 200) badAnswer(method, `HTTP ${res.status}`);
    return json.result as T;
  }

  async #readBody(res: Response, method: string): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > this.#maxResponseBytes) {
      await res.body?.cancel();
      badAnswer(method, `a body of ${declared} bytes, over the limit`);
    }
    if (res.body === null) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    // Bounded: every round adds at least one byte or ends, and total is capped.
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > this.#maxResponseBytes) {
        await reader.cancel();
        badAnswer(method, 'a body over the size limit');
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  #rpcError(method: string, error: unknown): CustosError {
    if (!isRecord(error) || typeof error.code !== 'number' || typeof error.message !== 'string') {
      return new CustosError('UNAVAILABLE', `chain node answered ${method} with a malformed error`, {
        method,
      });
    }
    const rpcCode = error.code;
    const reason = clip(error.message);
    let code: ErrorCode;
    if (method === 'sendrawtransaction' && TX_REJECT_CODES.has(rpcCode)) code = 'CHAIN_REJECTED';
    else if (rpcCode === RPC_INVALID_ADDRESS_OR_KEY) code = 'NOT_FOUND';
    else if (rpcCode === RPC_INVALID_PARAMETER) code = 'INVALID_VALUE';
    else code = 'UNAVAILABLE';
    const message =
      code === 'CHAIN_REJECTED'
        ? `chain node rejected the transaction: ${reason}`
        : `chain node refused ${method}: ${reason} (RPC error ${rpcCode})`;
    return new CustosError(code, message, { method, rpcCode, reason });
  }

  async getChainInfo(): Promise<ChainInfo> {
    const method = 'getblockchaininfo';
    const info = await this.call<unknown>(method, []);
    if (!isRecord(info)) badAnswer(method, 'something that is not an object');
    if (typeof info.chain !== 'string' || info.chain.length === 0 || info.chain.length > 32) {
      badAnswer(method, 'no chain name');
    }
    return {
      chain: info.chain,
      blocks: expectHeight(method, info.blocks),
      bestBlockHash: expectHash(method, info.bestblockhash),
    };
  }

  async getBlockCount(): Promise<number> {
    return expectHeight('getblockcount', await this.call<unknown>('getblockcount', []));
  }

  /** The hash of the active chain's block at `height`; INVALID_VALUE past the tip (RPC error -8). */
  async getBlockHash(height: number): Promise<string> {
    if (!Number.isSafeInteger(height) || height < 0) {
      throw new CustosError('INVALID_VALUE', 'block height must be a non-negative integer');
    }
    return expectHash('getblockhash', await this.call<unknown>('getblockhash', [height]));
  }

  /**
   * The block's raw bytes (`getblock <hash> false`: both Core and bcoin accept the boolean). The
   * header must hash to `hash`, so a node cannot substitute another block; block.ts binds the
   * transactions to the header.
   */
  async getBlockRaw(hash: string): Promise<Uint8Array> {
    if (!HASH_RE.test(hash))
      throw new CustosError('INVALID_VALUE', 'block hash must be 64 lower-case hex digits');
    const method = 'getblock';
    const raw = expectHexBytes(method, await this.call<unknown>(method, [hash, false]));
    if (raw.length < 80 || blockHash(raw) !== hash)
      badAnswer(method, 'a block that is not the one asked for');
    return raw;
  }

  /**
   * A transaction's raw bytes. Both nodes find mempool transactions; confirmed ones only with a
   * transaction index (Core -txindex, bcoin indexTX), else NOT_FOUND (Core) or UNAVAILABLE (bcoin's
   * generic error code).
   */
  async getRawTransaction(txid: string): Promise<Uint8Array> {
    if (!HASH_RE.test(txid)) throw new CustosError('INVALID_VALUE', 'txid must be 64 lower-case hex digits');
    const method = 'getrawtransaction';
    const raw = expectHexBytes(method, await this.call<unknown>(method, [txid, false]));
    let parsedTxid: string;
    try {
      parsedTxid = parseTransaction(raw).txid;
    } catch {
      badAnswer(method, 'bytes that are not a transaction');
    }
    if (parsedTxid !== txid) badAnswer(method, 'a transaction that is not the one asked for');
    return raw;
  }

  /** Submits a signed transaction; returns its txid. CHAIN_REJECTED with the node's reason if refused. */
  async sendRawTransaction(hex: string): Promise<string> {
    let txid: string;
    try {
      txid = parseTransaction(fromHex(hex)).txid;
    } catch (err) {
      throw new CustosError(
        'INVALID_VALUE',
        'not a serialized transaction in lower-case hex',
        {},
        { cause: err },
      );
    }
    const method = 'sendrawtransaction';
    const answered = expectHash(method, await this.call<unknown>(method, [hex]));
    if (answered !== txid) badAnswer(method, 'a txid that is not the transaction sent');
    return answered;
  }

  /**
   * The node's fee-rate estimate for confirmation within `blocks`, in satoshis per virtual byte
   * (rounded up), or null when it has none (usual on regtest and right after start).
   */
  async estimateFeeRate(blocks: number): Promise<bigint | null> {
    if (!Number.isSafeInteger(blocks) || blocks < 1 || blocks > 1008) {
      throw new CustosError('INVALID_VALUE', 'confirmation target must be an integer from 1 to 1008');
    }
    const method = 'estimatesmartfee';
    const res = await this.call<unknown>(method, [blocks]);
    if (!isRecord(res)) badAnswer(method, 'something that is not an object');
    // Core: { feerate?, errors?, blocks }; bcoin: { fee (-1 for none), blocks }.
    return feeRateSatPerVb(method, 'feerate' in res ? res.feerate : res.fee);
  }

  async getRawMempool(): Promise<string[]> {
    const method = 'getrawmempool';
    const res = await this.call<unknown>(method, []);
    if (!Array.isArray(res)) badAnswer(method, 'something that is not a list');
    return res.map((txid: unknown) => expectHash(method, txid));
  }
}
