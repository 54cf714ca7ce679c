/**
 * A UTXO tracker for the coordinator's wallets, fed block by block.
 *
 * Pure state plus one async step, `syncChain`, in the functional-core style of
 * the rest of Custos: the tracker does no I/O and keeps no clock; the caller
 * persists `toJSON()` and restores with `fromJSON()`. It reads raw blocks
 * rather than a wallet or address index so it works the same on any node
 * (Bitcoin Core with no wallet loaded, bcoin), and so every coin comes with
 * the full transaction that created it: signers need that transaction to
 * prove a segwit v0 input's amount (docs/architecture.md, flow step 4), and the tracker
 * stores the bytes the txid commits to, not a node's word for the amount.
 *
 * Outputs paying a watched script are added; inputs spending a tracked
 * outpoint remove it. Each applied block keeps an undo log, so a reorg
 * (found when the node's block at the tracked height differs, or a new
 * block's prevHash is not the tracked tip) disconnects blocks one at a time
 * and rescans; the undo history is bounded, and a reorg deeper than it is
 * refused (CONFLICT) for an operator to handle, since it means something far
 * worse than an ordinary reorg.
 *
 * The watch function can be replaced as new addresses are derived; it only
 * applies to blocks scanned after that, so callers derive ahead of the
 * addresses they hand out (a gap limit), as BIP 44 wallets do.
 */
import { CustosError, fromHex, schema, toHex } from '@custos/core';
import { type ParsedBlock, parseBlock, parseTransaction } from './block.js';
import type { BitcoinRpc } from './rpc.js';

/** What the watch function says about a script it recognizes. */
export interface WatchedScript {
  readonly wallet: string;
  /** BIP 44 branch: 0 receive, 1 change. */
  readonly branch: 0 | 1;
  readonly index: number;
}

export type WatchFn = (script: Uint8Array) => WatchedScript | null;

export interface TrackedUtxo {
  readonly txid: string;
  readonly vout: number;
  readonly value: bigint;
  readonly script: Uint8Array;
  readonly wallet: string;
  readonly branch: 0 | 1;
  readonly index: number;
  /** The full funding transaction, as found in the block (the bytes its txid commits to, plus witness). */
  readonly prevTx: Uint8Array;
  /** Height of the block that confirmed it. */
  readonly height: number;
  /** Coinbase outputs need 100 confirmations before they can be spent (consensus). */
  readonly coinbase: boolean;
  /** Marked by {@link UtxoTracker.spend} and not yet seen spent in a block. */
  readonly pending: boolean;
  /** Confirmations with the chain tip at `tip` (1 when confirmed in the tip block itself). */
  confirmations(tip: number): number;
}

export interface ChainTip {
  readonly height: number;
  readonly hash: string;
}

interface UtxoRecord {
  readonly txid: string;
  readonly vout: number;
  readonly value: bigint;
  readonly script: Uint8Array;
  readonly wallet: string;
  readonly branch: 0 | 1;
  readonly index: number;
  readonly prevTx: Uint8Array;
  readonly height: number;
  readonly coinbase: boolean;
}

type UndoOp = { readonly add: string } | { readonly remove: UtxoRecord; readonly pending: boolean };

interface BlockUndo {
  readonly height: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly ops: readonly UndoOp[];
}

/** Blocks of undo data kept by default: a day of blocks, far deeper than any reorg seen on mainnet. */
export const DEFAULT_MAX_UNDO = 144;
export const COINBASE_MATURITY = 100;

function outpointKey(txid: string, vout: number): string {
  return `${txid}:${vout}`;
}

/** A watch function's answer must fit the persisted form, or the state could not be restored. */
function checkWatched(hit: WatchedScript): void {
  if (
    typeof hit.wallet !== 'string' ||
    hit.wallet.length === 0 ||
    hit.wallet.length > 256 ||
    (hit.branch !== 0 && hit.branch !== 1) ||
    !Number.isSafeInteger(hit.index) ||
    hit.index < 0 ||
    hit.index > 0xffffffff
  ) {
    throw new CustosError('INVALID_VALUE', 'watch function returned an invalid wallet, branch or index');
  }
}

function utxoJsonOf(r: UtxoRecord): UtxoJson {
  return {
    txid: r.txid,
    vout: r.vout,
    value: r.value.toString(),
    script: toHex(r.script),
    wallet: r.wallet,
    branch: r.branch,
    index: r.index,
    height: r.height,
    coinbase: r.coinbase,
  };
}

function view(r: UtxoRecord, pending: boolean): TrackedUtxo {
  return {
    ...r,
    pending,
    confirmations: (tip: number) => Math.max(0, tip - r.height + 1),
  };
}

/**
 * The set of unspent outputs paying watched scripts, as of a chain tip.
 *
 * @example
 * const tracker = new UtxoTracker((script) => wallets.lookup(script));
 * await syncChain(rpc, tracker, { startHeight: walletBirthHeight });
 * const coins = tracker.utxos('treasury').filter((u) => u.confirmations(tip) >= 1);
 */
export class UtxoTracker {
  #watch: WatchFn;
  readonly #maxUndo: number;
  readonly #utxos = new Map<string, UtxoRecord>();
  readonly #pending = new Set<string>();
  /** Oldest first; at most #maxUndo entries. */
  #undo: BlockUndo[] = [];
  #tip: ChainTip | null = null;
  /** Outpoints added or removed since the last takeChanges(), and the lowest block height touched. */
  readonly #touched = new Set<string>();
  #lowestTouched: number | null = null;

  constructor(watch: WatchFn, opts: { readonly maxUndo?: number } = {}) {
    const maxUndo = opts.maxUndo ?? DEFAULT_MAX_UNDO;
    if (!Number.isSafeInteger(maxUndo) || maxUndo < 1 || maxUndo > 10_000) {
      throw new CustosError('INVALID_VALUE', 'maxUndo must be an integer from 1 to 10000');
    }
    this.#watch = watch;
    this.#maxUndo = maxUndo;
  }

  /** Replaces the watch function (new addresses derived); it applies to blocks scanned from now on. */
  setWatch(watch: WatchFn): void {
    this.#watch = watch;
  }

  /** The last block applied, or null before the first. */
  get tip(): ChainTip | null {
    return this.#tip;
  }

  /** How many blocks can be disconnected now. */
  get undoDepth(): number {
    return this.#undo.length;
  }

  /**
   * Applies the block at `height`, which must extend the tracked tip (any block, when there is none
   * yet). Transactions are taken in block order, so a coin created and spent in the same block
   * leaves no trace.
   */
  applyBlock(height: number, block: ParsedBlock): void {
    if (!Number.isSafeInteger(height) || height < 0) {
      throw new CustosError('INVALID_VALUE', 'block height must be a non-negative integer');
    }
    const tip = this.#tip;
    if (tip !== null && (height !== tip.height + 1 || block.prevHash !== tip.hash)) {
      throw new CustosError(
        'CONFLICT',
        `block ${block.hash} at height ${height} does not extend the tracked tip`,
        {
          height,
          tipHeight: tip.height,
        },
      );
    }
    this.#touch(height);
    const ops: UndoOp[] = [];
    for (const [position, { txid, raw, tx }] of block.txs.entries()) {
      const coinbase = position === 0;
      if (!coinbase) {
        for (let i = 0; i < tx.inputsLength; i++) {
          const input = tx.getInput(i);
          if (input.txid === undefined || input.index === undefined) continue;
          const key = outpointKey(toHex(input.txid), input.index);
          const spent = this.#utxos.get(key);
          if (spent === undefined) continue;
          const pending = this.#pending.delete(key);
          this.#utxos.delete(key);
          this.#touched.add(key);
          ops.push({ remove: spent, pending });
        }
      }
      for (let vout = 0; vout < tx.outputsLength; vout++) {
        const output = tx.getOutput(vout);
        if (output.script === undefined || output.amount === undefined) continue;
        const hit = this.#watch(output.script);
        if (hit === null) continue;
        checkWatched(hit);
        const key = outpointKey(txid, vout);
        // BIP 30 forbids a txid while an earlier copy is unspent; keep the first rather than overwrite.
        if (this.#utxos.has(key)) continue;
        this.#utxos.set(key, {
          txid,
          vout,
          value: output.amount,
          script: output.script.slice(),
          wallet: hit.wallet,
          branch: hit.branch,
          index: hit.index,
          prevTx: raw,
          height,
          coinbase,
        });
        this.#touched.add(key);
        ops.push({ add: key });
      }
    }
    this.#undo.push({ height, hash: block.hash, prevHash: block.prevHash, ops });
    if (this.#undo.length > this.#maxUndo) this.#undo.shift();
    this.#tip = { height, hash: block.hash };
  }

  /**
   * Undoes the tip block (a reorg). CONFLICT when no undo data is left: the reorg is deeper than
   * the history kept, and the tracker must be rebuilt from a rescan.
   */
  disconnectTip(): void {
    const last = this.#undo.pop();
    if (last === undefined) {
      throw new CustosError(
        'CONFLICT',
        `cannot disconnect block at height ${this.#tip?.height ?? -1}: no undo data left (reorg deeper than ${this.#maxUndo} blocks?)`,
      );
    }
    this.#touch(last.height);
    // Reverse order, so a coin created then spent in this block is restored then removed.
    for (let i = last.ops.length - 1; i >= 0; i--) {
      const op = last.ops[i]!;
      if ('add' in op) {
        this.#utxos.delete(op.add);
        this.#pending.delete(op.add);
        this.#touched.add(op.add);
      } else {
        const key = outpointKey(op.remove.txid, op.remove.vout);
        this.#touched.add(key);
        this.#utxos.set(key, op.remove);
        if (op.pending) this.#pending.add(key);
      }
    }
    this.#tip = last.height === 0 ? null : { height: last.height - 1, hash: last.prevHash };
  }

  /**
   * The wallet's unspent tracked outputs, oldest first. Outputs marked by {@link spend} are left out
   * unless `includePending`.
   */
  utxos(wallet: string, opts: { readonly includePending?: boolean } = {}): TrackedUtxo[] {
    const out: TrackedUtxo[] = [];
    for (const [key, r] of this.#utxos) {
      if (r.wallet !== wallet) continue;
      const pending = this.#pending.has(key);
      if (pending && opts.includePending !== true) continue;
      out.push(view(r, pending));
    }
    return out.sort(
      (a, b) => a.height - b.height || (a.txid < b.txid ? -1 : a.txid > b.txid ? 1 : a.vout - b.vout),
    );
  }

  /** One tracked output, or null. */
  get(txid: string, vout: number): TrackedUtxo | null {
    const key = outpointKey(txid, vout);
    const r = this.#utxos.get(key);
    return r === undefined ? null : view(r, this.#pending.has(key));
  }

  /**
   * Marks an output as spent by a transaction the coordinator broadcast and that is not yet in a
   * block, so coin selection does not pick it twice. Returns false when the output is not tracked.
   * The output goes for good when a block spends it; {@link release} undoes the mark if the
   * transaction is dropped.
   */
  spend(txid: string, vout: number): boolean {
    const key = outpointKey(txid, vout);
    if (!this.#utxos.has(key)) return false;
    this.#pending.add(key);
    return true;
  }

  /** Clears a {@link spend} mark. Returns false when there was none. */
  release(txid: string, vout: number): boolean {
    return this.#pending.delete(outpointKey(txid, vout));
  }

  /**
   * What changed since the last call (or since the tracker was made): every outpoint added or
   * removed, in either direction, and the lowest block height applied or disconnected. Clears it.
   * With {@link get} and {@link undoJson}, a caller persists only what changed (as rows), where
   * toJSON() gives the whole state.
   */
  takeChanges(): { readonly outpoints: readonly string[]; readonly lowestHeight: number | null } {
    const changes = { outpoints: [...this.#touched], lowestHeight: this.#lowestTouched };
    this.#touched.clear();
    this.#lowestTouched = null;
    return changes;
  }

  /** The heights of the blocks that can be disconnected now, oldest first. */
  undoHeights(): number[] {
    return this.#undo.map((b) => b.height);
  }

  /**
   * One block's undo data as plain JSON (the form toJSON() gives), with the funding transactions
   * of the outputs it removed, or null when the block is not in the undo history.
   */
  undoJson(height: number): {
    readonly block: TrackerJson['undo'][number];
    readonly txs: TrackerJson['txs'];
  } | null {
    const b = this.#undo.find((u) => u.height === height);
    if (b === undefined) return null;
    const txs = new Map<string, string>();
    const ops = b.ops.map((op): UndoOpJson => {
      if ('add' in op) return { add: op.add };
      if (!txs.has(op.remove.txid)) txs.set(op.remove.txid, toHex(op.remove.prevTx));
      return { remove: utxoJsonOf(op.remove), pending: op.pending };
    });
    return {
      block: { height: b.height, hash: b.hash, prevHash: b.prevHash, ops },
      txs: [...txs].map(([txid, raw]) => ({ txid, raw })),
    };
  }

  /** How many blocks of undo data this tracker keeps. */
  get maxUndo(): number {
    return this.#maxUndo;
  }

  #touch(height: number): void {
    if (this.#lowestTouched === null || height < this.#lowestTouched) this.#lowestTouched = height;
  }

  /** The whole state as plain JSON (amounts as decimal strings, bytes as hex), for persistence. */
  toJSON(): TrackerJson {
    const txs = new Map<string, string>();
    const utxoJson = (r: UtxoRecord): UtxoJson => {
      if (!txs.has(r.txid)) txs.set(r.txid, toHex(r.prevTx));
      return utxoJsonOf(r);
    };
    const utxos = [...this.#utxos.values()].map(utxoJson);
    const undo = this.#undo.map((b) => ({
      height: b.height,
      hash: b.hash,
      prevHash: b.prevHash,
      ops: b.ops.map(
        (op): UndoOpJson =>
          'add' in op ? { add: op.add } : { remove: utxoJson(op.remove), pending: op.pending },
      ),
    }));
    return {
      v: 1,
      tip: this.#tip === null ? null : { height: this.#tip.height, hash: this.#tip.hash },
      maxUndo: this.#maxUndo,
      utxos,
      pending: [...this.#pending],
      undo,
      txs: [...txs].map(([txid, raw]) => ({ txid, raw })),
    };
  }

  /**
   * Restores a tracker from {@link toJSON} output, checking it strictly: each stored transaction must
   * hash to its txid and its output must pay the stored value to the stored script, so a tampered
   * state file cannot invent coins or amounts.
   */
  static fromJSON(json: unknown, watch: WatchFn): UtxoTracker {
    const state = trackerSchema.parse(json);
    const txs = new Map<string, { raw: Uint8Array; outputs: { amount: bigint; script: Uint8Array }[] }>();
    for (const { txid, raw } of state.txs) {
      if (txs.has(txid)) throw new CustosError('INVALID_VALUE', `transaction ${txid} is stored twice`);
      const parsed = parseTransaction(fromHex(raw));
      if (parsed.txid !== txid)
        throw new CustosError('INVALID_VALUE', `stored transaction ${txid} has another txid`);
      const outputs: { amount: bigint; script: Uint8Array }[] = [];
      for (let i = 0; i < parsed.tx.outputsLength; i++) {
        const o = parsed.tx.getOutput(i);
        outputs.push({ amount: o.amount ?? -1n, script: o.script ?? new Uint8Array() });
      }
      txs.set(txid, { raw: parsed.raw, outputs });
    }
    const record = (u: UtxoJson): UtxoRecord => {
      const tx = txs.get(u.txid);
      if (tx === undefined) throw new CustosError('MISSING_FIELD', `no stored transaction for ${u.txid}`);
      const out = tx.outputs[u.vout];
      const script = fromHex(u.script);
      const value = BigInt(u.value);
      if (out === undefined || out.amount !== value || toHex(out.script) !== u.script) {
        throw new CustosError(
          'INVALID_VALUE',
          `stored output ${u.txid}:${u.vout} does not match its transaction`,
        );
      }
      return {
        txid: u.txid,
        vout: u.vout,
        value,
        script,
        wallet: u.wallet,
        branch: u.branch === 1 ? 1 : 0,
        index: u.index,
        prevTx: tx.raw,
        height: u.height,
        coinbase: u.coinbase,
      };
    };
    const tracker = new UtxoTracker(watch, { maxUndo: state.maxUndo });
    for (const u of state.utxos) {
      const key = outpointKey(u.txid, u.vout);
      if (tracker.#utxos.has(key)) throw new CustosError('INVALID_VALUE', `output ${key} is stored twice`);
      tracker.#utxos.set(key, record(u));
    }
    for (const key of state.pending) {
      if (!tracker.#utxos.has(key))
        throw new CustosError('INVALID_VALUE', `pending output ${key} is not tracked`);
      tracker.#pending.add(key);
    }
    if (state.undo.length > state.maxUndo)
      throw new CustosError('INVALID_VALUE', 'more undo blocks than maxUndo');
    tracker.#undo = state.undo.map((b) => ({
      height: b.height,
      hash: b.hash,
      prevHash: b.prevHash,
      ops: b.ops.map(
        (op): UndoOp => ('add' in op ? { add: op.add } : { remove: record(op.remove), pending: op.pending }),
      ),
    }));
    const last = tracker.#undo.at(-1);
    if (
      last !== undefined &&
      (state.tip === null || last.hash !== state.tip.hash || last.height !== state.tip.height)
    ) {
      throw new CustosError('INVALID_VALUE', 'undo history does not end at the tip');
    }
    tracker.#tip = state.tip;
    return tracker;
  }
}

const hash = schema.string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/ });
const u32 = schema.int({ min: 0, max: 0xffffffff });
const height = schema.int({ min: 0, max: 100_000_000 });
const outpoint = schema.string({ min: 66, max: 75, pattern: /^[0-9a-f]{64}:(?:0|[1-9][0-9]{0,9})$/ });
const utxoSchema = schema.object({
  txid: hash,
  vout: u32,
  value: schema.string({
    min: 1,
    max: 16,
    pattern: /^(?:0|[1-9][0-9]*)$/,
    patternCode: 'NON_CANONICAL_AMOUNT',
  }),
  script: schema.string({ min: 2, max: 20_000, pattern: /^(?:[0-9a-f]{2})+$/ }),
  wallet: schema.string({ min: 1, max: 256 }),
  branch: schema.int({ min: 0, max: 1 }),
  index: u32,
  height,
  coinbase: schema.boolean(),
});
const addOpSchema = schema.object({ add: outpoint });
const removeOpSchema = schema.object({ remove: utxoSchema, pending: schema.boolean() });
/** An undo operation: `{ add }` or `{ remove, pending }`, told apart by which key is present. */
const undoOpSchema: schema.Schema<UndoOpJson> = {
  jsonSchema: { oneOf: [addOpSchema.jsonSchema, removeOpSchema.jsonSchema] },
  parse(value, path = '') {
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, 'add')) {
      return addOpSchema.parse(value, path);
    }
    return removeOpSchema.parse(value, path);
  },
};
const MAX_ITEMS = 10_000_000;
const trackerSchema = schema.object({
  v: schema.literal(1),
  tip: schema.nullable(schema.object({ height, hash })),
  maxUndo: schema.int({ min: 1, max: 10_000 }),
  utxos: schema.array(utxoSchema, { max: MAX_ITEMS }),
  pending: schema.array(outpoint, { max: MAX_ITEMS, unique: true }),
  undo: schema.array(
    schema.object({
      height,
      hash,
      prevHash: hash,
      ops: schema.array(undoOpSchema, { max: MAX_ITEMS }),
    }),
    { max: 10_000 },
  ),
  txs: schema.array(
    schema.object({
      txid: hash,
      raw: schema.string({ min: 2, max: 8_000_000, pattern: /^(?:[0-9a-f]{2})+$/ }),
    }),
    { max: MAX_ITEMS },
  ),
});

export type UtxoJson = schema.Infer<typeof utxoSchema>;
export type UndoOpJson = { add: string } | { remove: UtxoJson; pending: boolean };
export type TrackerJson = schema.Infer<typeof trackerSchema>;

export interface SyncOptions {
  /** Where an empty tracker starts (the wallets' birth height); default 0. */
  readonly startHeight?: number;
  /** Blocks applied per call at most, so one call stays short; default 500. */
  readonly maxBlocks?: number;
}

export interface SyncResult {
  readonly tip: ChainTip | null;
  readonly applied: number;
  readonly disconnected: number;
  /** True when the tracker reached the node's tip in this call. */
  readonly caughtUp: boolean;
}

/**
 * One step of following the chain: undoes blocks the node no longer has on its active chain, then
 * applies up to `maxBlocks` new ones. Call it on a timer or on a new-block notification; it is safe
 * to call again after any error (the tracker only changes a block at a time).
 */
export async function syncChain(
  rpc: BitcoinRpc,
  tracker: UtxoTracker,
  opts: SyncOptions = {},
): Promise<SyncResult> {
  const startHeight = opts.startHeight ?? 0;
  const maxBlocks = opts.maxBlocks ?? 500;
  if (!Number.isSafeInteger(startHeight) || startHeight < 0) {
    throw new CustosError('INVALID_VALUE', 'startHeight must be a non-negative integer');
  }
  if (!Number.isSafeInteger(maxBlocks) || maxBlocks < 1) {
    throw new CustosError('INVALID_VALUE', 'maxBlocks must be a positive integer');
  }
  let disconnected = 0;
  let applied = 0;
  const nodeHeight = await rpc.getBlockCount();
  // Reorg check: walk back until the tracked tip is on the node's active chain. Bounded by the undo
  // depth: disconnectTip throws CONFLICT when it runs out.
  for (let tip = tracker.tip; tip !== null; tip = tracker.tip) {
    if (tip.height <= nodeHeight && (await rpc.getBlockHash(tip.height)) === tip.hash) break;
    tracker.disconnectTip();
    disconnected++;
  }
  // Forward. A block whose prevHash is not the tracked tip means the node reorganized while we
  // were reading: step back one and read again. Every round applies or disconnects a block, and a
  // disconnect needs an earlier apply or undo data already held, so this budget is never reached
  // by an honest node and bounds a dishonest one.
  const budget = 2 * maxBlocks + tracker.undoDepth + 1;
  for (let round = 0; round < budget && applied < maxBlocks; round++) {
    const tip = tracker.tip;
    const next = tip === null ? startHeight : tip.height + 1;
    if (next > nodeHeight) break;
    let block: ParsedBlock;
    try {
      block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(next)));
    } catch (err) {
      // The node's chain got shorter since getblockcount: stop here, the next call sorts it out.
      if (err instanceof CustosError && err.code === 'INVALID_VALUE' && err.details.method === 'getblockhash')
        break;
      throw err;
    }
    if (tip !== null && block.prevHash !== tip.hash) {
      tracker.disconnectTip();
      disconnected++;
      continue;
    }
    tracker.applyBlock(next, block);
    applied++;
  }
  const tip = tracker.tip;
  return { tip, applied, disconnected, caughtUp: (tip?.height ?? startHeight - 1) >= nodeHeight };
}
