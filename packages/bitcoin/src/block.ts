/**
 * Strict parsing of raw Bitcoin blocks and transactions.
 *
 * The coordinator learns about its wallets' coins from blocks its chain node
 * serves as raw bytes (`getblock <hash> false`): Bitcoin Core and bcoin return
 * the same bytes, while their JSON views of a block differ between
 * implementations and versions. The node is trusted for availability only
 * (docs/architecture.md, trust model), so this parser checks everything the bytes alone
 * can prove: every length is exact (truncated input, trailing bytes and
 * non-minimal CompactSize integers are refused, as Bitcoin Core's
 * deserializer does), and the transactions must hash to the header's merkle
 * root, without the CVE-2012-2459 duplicate-subtree mutation. `rpc.ts` then
 * checks that the header hashes to the block id it asked for. Witness data is
 * not checked against the coinbase's witness commitment: nothing here relies
 * on it, since outpoints and full previous transactions are bound by txids.
 *
 * Transaction boundaries are found by walking the serialization (BIP 144 for
 * the witness form), which also yields the non-witness serialization the txid
 * is the double SHA-256 of. Each transaction is then decoded by
 * @scure/btc-signer's `Transaction.fromRaw`, with options that accept every
 * script and version: blocks carry scripts of every kind, and refusing one
 * would blind the scanner to a whole block.
 */
import { CustosError, toHex } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { Transaction, type TxOpts } from '@scure/btc-signer';

/** One transaction of a block, with its txid (display order hex) and its exact bytes. */
export interface ParsedTx {
  readonly txid: string;
  /** The transaction's own bytes, witness included when it has one (a copy, not a view of the block). */
  readonly raw: Uint8Array;
  readonly tx: Transaction;
}

export interface ParsedBlock {
  /** Block hash, display order hex (as RPC and explorers print it). */
  readonly hash: string;
  readonly prevHash: string;
  readonly merkleRoot: string;
  /** Header timestamp, seconds since the Unix epoch. */
  readonly time: number;
  readonly txs: readonly ParsedTx[];
}

const HEADER_BYTES = 80;
/** The largest serialized block consensus allows (4M weight units, all of it witness at best). */
export const MAX_BLOCK_BYTES = 4_000_000;
/** Smallest possible serialized transaction input (outpoint, empty script, sequence) and output. */
const MIN_INPUT_BYTES = 41;
const MIN_OUTPUT_BYTES = 9;
/** Smallest possible transaction: version, one input, one output, lock time. */
const MIN_TX_BYTES = 4 + 1 + MIN_INPUT_BYTES + 1 + MIN_OUTPUT_BYTES + 4;

/**
 * Blocks carry every kind of script; these options let scure decode them all.
 * Frozen: parsing never signs, so the relaxed checks cannot weaken a signature.
 */
const DECODE_OPTS: Readonly<TxOpts> = Object.freeze({
  allowUnknownOutputs: true,
  allowUnknownInputs: true,
  allowUnknownVersion: true,
  disableScriptCheck: true,
  allowLegacyWitnessUtxo: true,
});

/** Double SHA-256, as Bitcoin hashes headers, transactions and merkle nodes. */
export function sha256d(bytes: Uint8Array): Uint8Array {
  return sha256(sha256(bytes));
}

function displayHex(internalOrder: Uint8Array): string {
  return toHex(internalOrder.slice().reverse());
}

function truncated(what: string, offset: number): never {
  throw new CustosError('INVALID_VALUE', `${what} is truncated at byte ${offset}`, { offset });
}

/** A cursor over bytes that refuses to read past the end. */
class Reader {
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
    start = 0,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  skip(n: number): void {
    if (n > this.remaining) truncated(this.what, this.pos);
    this.pos += n;
  }

  u8(): number {
    const b = this.bytes[this.pos];
    if (b === undefined) truncated(this.what, this.pos);
    this.pos += 1;
    return b;
  }

  u16(): number {
    return this.u8() | (this.u8() << 8);
  }

  u32(): number {
    return (this.u16() + this.u16() * 0x10000) >>> 0;
  }

  /**
   * Bitcoin's CompactSize, minimal encoding only (Core: "non-canonical ReadCompactSize()").
   * Values larger than the bytes left cannot be a count or a length here, and are refused as truncation.
   */
  compactSize(): number {
    const at = this.pos;
    const first = this.u8();
    let value: number;
    let min: number;
    if (first < 0xfd) return first;
    if (first === 0xfd) {
      value = this.u16();
      min = 0xfd;
    } else if (first === 0xfe) {
      value = this.u32();
      min = 0x10000;
    } else {
      const lo = this.u32();
      const hi = this.u32();
      if (hi !== 0) truncated(this.what, at);
      value = lo;
      min = 0x100000000;
    }
    if (value < min) {
      throw new CustosError(
        'NON_CANONICAL_ENCODING',
        `${this.what} has a non-minimal CompactSize at byte ${at}`,
        {
          offset: at,
        },
      );
    }
    return value;
  }

  /** A count of items each at least `minBytes` long: refused early when they cannot fit. */
  count(minBytes: number): number {
    const at = this.pos;
    const n = this.compactSize();
    if (n * minBytes > this.remaining) truncated(this.what, at);
    return n;
  }
}

interface TxSpan {
  readonly start: number;
  readonly end: number;
  /** sha256d of the non-witness serialization, internal byte order. */
  readonly txidInternal: Uint8Array;
}

/** Walks one transaction starting at `r.pos` (BIP 144 serialization) and leaves `r.pos` after it. */
function walkTx(r: Reader): TxSpan {
  const start = r.pos;
  r.skip(4); // version
  let segwit = false;
  let bodyStart = r.pos;
  // BIP 144: marker 0x00 (read where the input count would be) then flag 0x01.
  if (r.bytes[r.pos] === 0x00 && r.remaining >= 2) {
    const flag = r.bytes[r.pos + 1];
    if (flag !== 0x00) {
      if (flag !== 0x01) {
        throw new CustosError('INVALID_VALUE', `${r.what} has an unknown witness flag at byte ${r.pos + 1}`, {
          offset: r.pos + 1,
        });
      }
      segwit = true;
      r.skip(2);
      bodyStart = r.pos;
    }
  }
  const inputs = r.count(MIN_INPUT_BYTES);
  for (let i = 0; i < inputs; i++) {
    r.skip(36); // outpoint
    r.skip(r.compactSize()); // scriptSig
    r.skip(4); // sequence
  }
  const outputs = r.count(MIN_OUTPUT_BYTES);
  for (let i = 0; i < outputs; i++) {
    r.skip(8); // amount
    r.skip(r.compactSize()); // scriptPubKey
  }
  const bodyEnd = r.pos;
  if (segwit) {
    let anyWitness = false;
    for (let i = 0; i < inputs; i++) {
      const items = r.count(1);
      if (items > 0) anyWitness = true;
      for (let j = 0; j < items; j++) r.skip(r.compactSize());
    }
    // Core refuses a witness flag with no witness ("Superfluous witness record"): the same
    // transaction would then have two serializations.
    if (!anyWitness) {
      throw new CustosError('NON_CANONICAL_ENCODING', `${r.what} has a witness flag but no witness`, {
        offset: start,
      });
    }
  }
  r.skip(4); // lock time
  const end = r.pos;
  const bytes = r.bytes;
  const stripped = segwit
    ? concat3(
        bytes.subarray(start, start + 4),
        bytes.subarray(bodyStart, bodyEnd),
        bytes.subarray(end - 4, end),
      )
    : bytes.subarray(start, end);
  return { start, end, txidInternal: sha256d(stripped) };
}

function concat3(a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length + c.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(c, a.length + b.length);
  return out;
}

function decodeTx(raw: Uint8Array, txid: string, what: string): Transaction {
  try {
    return Transaction.fromRaw(raw, DECODE_OPTS);
  } catch (err) {
    throw new CustosError('INVALID_VALUE', `${what} cannot be decoded`, { txid }, { cause: err });
  }
}

/**
 * Parses one serialized transaction (with or without witness); trailing bytes are refused.
 *
 * @example
 * const { txid, tx } = parseTransaction(fromHex(rawHex));
 */
export function parseTransaction(raw: Uint8Array): ParsedTx {
  const r = new Reader(raw, 'transaction');
  const span = walkTx(r);
  if (r.remaining !== 0) {
    throw new CustosError('TRAILING_DATA', `transaction has ${r.remaining} bytes after its end`, {
      offset: r.pos,
    });
  }
  const txid = displayHex(span.txidInternal);
  const copy = raw.slice();
  return { txid, raw: copy, tx: decodeTx(copy, txid, 'transaction') };
}

/** The block hash of an 80-byte header (display order hex). */
export function blockHash(header: Uint8Array): string {
  if (header.length < HEADER_BYTES) truncated('block header', header.length);
  return displayHex(sha256d(header.subarray(0, HEADER_BYTES)));
}

/**
 * The merkle root of txids (internal order), refusing the CVE-2012-2459 mutation: two identical
 * hashes side by side at any level, which lets a different transaction list share the root.
 */
function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  let level = leaves.slice();
  // Each level halves the list: at most ~log2(leaves) rounds.
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i]!;
      const right = level[i + 1];
      if (right !== undefined && equalBytes(left, right)) {
        throw new CustosError(
          'INVALID_VALUE',
          'block merkle tree holds a duplicated subtree (CVE-2012-2459)',
        );
      }
      const pair = new Uint8Array(64);
      pair.set(left, 0);
      pair.set(right ?? left, 32);
      next.push(sha256d(pair));
    }
    level = next;
  }
  const root = level[0];
  if (root === undefined) throw new CustosError('INVALID_VALUE', 'block has no transactions');
  return root;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Parses a raw block: 80-byte header, CompactSize transaction count, transactions. Refuses
 * truncation, trailing bytes, a block over {@link MAX_BLOCK_BYTES} and a merkle root the
 * transactions do not hash to.
 *
 * @example
 * const block = parseBlock(await rpc.getBlockRaw(hash));
 * for (const { txid, tx } of block.txs) { ... }
 */
export function parseBlock(raw: Uint8Array): ParsedBlock {
  if (raw.length > MAX_BLOCK_BYTES) {
    throw new CustosError('TOO_LARGE', `block is ${raw.length} bytes, over ${MAX_BLOCK_BYTES}`, {
      bytes: raw.length,
    });
  }
  const r = new Reader(raw, 'block');
  r.skip(HEADER_BYTES);
  const header = raw.subarray(0, HEADER_BYTES);
  const count = r.count(MIN_TX_BYTES);
  if (count === 0) throw new CustosError('INVALID_VALUE', 'block has no transactions');
  const spans: TxSpan[] = [];
  for (let i = 0; i < count; i++) spans.push(walkTx(r));
  if (r.remaining !== 0) {
    throw new CustosError('TRAILING_DATA', `block has ${r.remaining} bytes after its last transaction`, {
      offset: r.pos,
    });
  }
  const root = merkleRoot(spans.map((s) => s.txidInternal));
  const headerRoot = header.subarray(36, 68);
  if (!equalBytes(root, headerRoot)) {
    throw new CustosError('INVALID_VALUE', 'block transactions do not match the merkle root in its header');
  }
  const txs = spans.map((s): ParsedTx => {
    const txid = displayHex(s.txidInternal);
    const copy = raw.slice(s.start, s.end);
    return { txid, raw: copy, tx: decodeTx(copy, txid, `transaction ${txid}`) };
  });
  const time = new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(68, true);
  return {
    hash: blockHash(header),
    prevHash: displayHex(header.subarray(4, 36)),
    merkleRoot: displayHex(headerRoot),
    time,
    txs,
  };
}
