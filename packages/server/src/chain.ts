/**
 * The coordinator's view of its Bitcoin wallets (docs/architecture.md flow steps 3 and 5):
 * which coins each wallet holds, which of them are promised to an intent
 * being signed, which change address comes next, and where a broadcast
 * transaction was mined.
 *
 * Everything here is availability plumbing. A signer proves every input and
 * amount itself from the full previous transaction in the PSBT, so a wrong
 * coin list can only produce a PSBT that signers refuse, never a signature
 * the rules do not allow.
 *
 * How it is built:
 * - One UtxoTracker (@custos/bitcoin) follows the node block by block with
 *   syncChain and watches the scripts of every wallet in governance (kind
 *   bitcoin-wsh-sortedmulti on the node's network): receive (branch 0) and
 *   change (branch 1), derived `addressGap` ahead of the highest index used
 *   or handed out. The watch function extends the derivation the moment it
 *   sees an address used, so later outputs of the same sync are caught; a
 *   block whose earlier output paid an address derived only later in that
 *   block (block order is not address order) is read again. An address past
 *   the gap from the last used one is not found, as in any BIP 44 wallet.
 * - The tracker's state is saved as rows (db/chain-store.ts: the tip, one
 *   row per coin, per funding transaction and per block of undo data; a
 *   block writes only the rows it changed) and the wallets' used indices
 *   with their chain ids in kv (`chain:wallets`), so a restart resumes where
 *   it stopped. Every coordinator follows the same chain, so whichever one
 *   saved last left a valid resume point; a save over rows another
 *   coordinator moved meanwhile leaves them alone when they are at its tip or
 *   ahead, and writes its whole state only when they are behind elsewhere. A wallet added to governance (or a
 *   changed descriptor) restarts the scan at `startHeight` (the wallets' birth
 *   height): coins paid to it before it was watched must be found.
 * - UTXO reservations (rows of `coin_reservations` keyed by outpoint,
 *   db/chain-store.ts) and change index counters (`chain:change:<wallet>`,
 *   compare-and-set in kv) are shared by every coordinator on the database:
 *   of two coordinators building at once, one inserts a coin's row first and
 *   the other finds it taken and selects again without it. They are kept
 *   apart from the tracker (not tracker.spend/release), because the tracker
 *   state is one process's and is overwritten by whoever saves last.
 * - Each coin was proven when the tracker learned it (its funding
 *   transaction hashed to its txid in the block, or in the saved state when
 *   it was restored), and buildPsbt proves each coin it is handed once per
 *   funding transaction object. A build reads the mature coins of the wallet
 *   from a list sorted once per block, skips the reserved ones and hands
 *   buildPsbt the largest few (more only when they do not cover the amount):
 *   the same selection as from every coin, at a cost that does not grow with
 *   the wallet's history.
 * - Coins are selected only when the tracker has caught up with the node, so
 *   a coin already spent in a block not yet read is never offered.
 * - Confirmations are found by reading new blocks for the txids awaiting
 *   them (a cursor in kv, `chain:scan`), since the node may have no
 *   transaction index and a transaction without change pays no watched script.
 */
import {
  type BitcoinNetworkName,
  type BitcoinRpc,
  type BuiltPsbt,
  buildPsbt,
  type ChainTip,
  chainOfNetwork,
  changeIndexLimit,
  DEFAULT_MAX_UNDO,
  deriveAddress,
  networkOfChain,
  parseBlock,
  parseDescriptor,
  type SyncResult,
  syncChain,
  type TrackedUtxo,
  UtxoTracker,
  type WalletDescriptor,
  type WalletUtxo,
  type WatchedScript,
} from '@custos/bitcoin';
import {
  CustosError,
  type GovernanceState,
  type Result,
  refuse,
  schema,
  toHex,
  type Wallet,
} from '@custos/core';
import type { WalletSummary } from './contracts.js';
import type { TrackerChanges } from './db/chain-store.js';
import type { Store } from './db/repository.js';
import { errorFields, type Logger, silentLogger } from './pipeline/support.js';

export const WALLETS_KEY = 'chain:wallets';
export const SCAN_KEY = 'chain:scan';
export const changeKey = (wallet: string): string => `chain:change:${wallet}`;
/**
 * kv key: one past the highest receive index an internal transfer (issue 13)
 * was built to pay in this wallet. Deposits move the receive branch through
 * the scan; an internal transfer may name an index further on (up to core's
 * MAX_INTERNAL_RECEIVE_INDEX), so every coordinator watches up to it too.
 */
export const receiveKey = (wallet: string): string => `chain:receive:${wallet}`;

/** syncChain calls per sync at most (each applies up to maxBlocksPerSync blocks). */
const MAX_SYNC_ROUNDS = 20;
/** Compare-and-set attempts before giving up with UNAVAILABLE (another coordinator keeps winning). */
const MAX_CAS_ATTEMPTS = 16;
/** Blocks re-read below the confirmation cursor, so a shallow reorg or a late record is never missed. */
const RESCAN_MARGIN = 6;
/** Where the confirmation cursor starts when none is saved: this many blocks below the tip. */
const FIRST_SCAN_LOOKBACK = 144;
/** Blocks read per locate call at most. */
const MAX_LOCATE_BLOCKS = 200;

export interface ChainOptions {
  readonly rpc: BitcoinRpc;
  /** Addresses derived ahead of the highest used (or handed out) index, per branch. */
  readonly addressGap: number;
  /** Height where an empty tracker starts (the wallets' birth height). */
  readonly startHeight: number;
  /** Blocks applied per syncChain call. */
  readonly maxBlocksPerSync: number;
  readonly log?: Logger;
}

interface WatchedWallet {
  readonly id: string;
  readonly descriptorText: string;
  readonly descriptor: WalletDescriptor;
  /** Highest index seen paid, per branch; -1 for none. */
  readonly used: [number, number];
  /** Addresses derived so far, per branch (indices 0..derived-1 are watched). */
  readonly derived: [number, number];
}

/** v2 records each wallet's chain; a v1 document (no chain) does not restore and the wallets are scanned again. */
const walletsDoc = schema.object({
  v: schema.literal(2),
  wallets: schema.array(
    schema.object({
      id: schema.string({ min: 1, max: 256 }),
      /** The wallet's chain id (e.g. bitcoin:regtest): its network, which the descriptor text cannot tell. */
      chain: schema.string({ min: 1, max: 64 }),
      descriptor: schema.string({ min: 1, max: 4096 }),
      used: schema.array(schema.int({ min: -1, max: 0x7fffffff }), { min: 2, max: 2 }),
    }),
    { max: 1000 },
  ),
});

/** Coins handed to buildPsbt first (the largest unreserved); doubled while they do not cover the amount. */
const FIRST_CANDIDATES = 16;

export interface BuildOrder {
  readonly intent: string;
  readonly wallet: string;
  readonly to: string;
  readonly amount: bigint;
  /** A batch intent's payments (issue 13), in its order: one transaction pays them all plus change. */
  readonly outputs?: readonly { readonly to: string; readonly amount: bigint }[];
  readonly feeRate: bigint;
  /** The policy's total fee cap, when one applies: the rate is lowered to stay under it. */
  readonly maxFee: bigint | null;
}

export interface Located {
  readonly height: number;
  readonly hash: string;
}

/** Node chain names (getblockchaininfo) to network names. */
const NODE_CHAINS: ReadonlyMap<string, BitcoinNetworkName> = new Map([
  ['main', 'mainnet'],
  ['test', 'testnet'],
  ['testnet3', 'testnet'],
  ['testnet4', 'testnet'],
  ['signet', 'signet'],
  ['regtest', 'regtest'],
]);

/**
 * The coordinator's wallets on one node. All methods may throw UNAVAILABLE
 * (node or database unreachable); they never throw for bad chain data the
 * node sends (that is UNAVAILABLE too, from the RPC client).
 */
export class ChainWatcher {
  readonly #store: Store;
  readonly #rpc: BitcoinRpc;
  readonly #gap: number;
  readonly #startHeight: number;
  readonly #maxBlocks: number;
  readonly #log: Logger;

  #loaded = false;
  #tracker: UtxoTracker | null = null;
  #wallets = new Map<string, WatchedWallet>();
  readonly #scripts = new Map<string, WatchedScript>();
  #indicesChanged = false;
  /** The height of the block being applied, and the unwatched scripts its outputs paid so far. */
  #block = { height: -1, misses: new Set<string>() };
  /** The lowest block to read again: an output in it paid an address watched only later in it. */
  #rereadFrom: number | null = null;
  #caughtUp = false;
  /** The tracker tip the rows held when this process last read or wrote them; undefined: not known. */
  #savedTip: ChainTip | null | undefined = undefined;
  /** The tracker was rebuilt: its next save writes the whole state. */
  #wholeSave = false;
  #network: BitcoinNetworkName | null = null;
  #nodeHeight: number | null = null;
  #scanCursor: number | null = null;
  /** The txids the last locate looked for. */
  #searched: ReadonlySet<string> = new Set();
  /** A sync asked for and not started yet, which later callers join, and the state it will use. */
  #pendingSync: Promise<SyncResult> | null = null;
  #pendingState: GovernanceState | null = null;
  /** One sync or build at a time in this process. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Bumped whenever the tracker's coins may have changed: the sorted coin lists below are stale. */
  #generation = 0;
  /** Per wallet: its mature coins, largest first, as of #generation and a tip height. */
  readonly #coins = new Map<string, { generation: number; tip: number; list: readonly WalletUtxo[] }>();

  constructor(store: Store, opts: ChainOptions) {
    if (!Number.isSafeInteger(opts.addressGap) || opts.addressGap < 1 || opts.addressGap > 10_000) {
      throw new CustosError('INVALID_VALUE', 'addressGap must be an integer from 1 to 10000');
    }
    if (
      !Number.isSafeInteger(opts.maxBlocksPerSync) ||
      opts.maxBlocksPerSync < 1 ||
      opts.maxBlocksPerSync > 5000
    ) {
      throw new CustosError('INVALID_VALUE', 'maxBlocksPerSync must be an integer from 1 to 5000');
    }
    if (!Number.isSafeInteger(opts.startHeight) || opts.startHeight < 0) {
      throw new CustosError('INVALID_VALUE', 'startHeight must be a non-negative integer');
    }
    this.#store = store;
    this.#rpc = opts.rpc;
    this.#gap = opts.addressGap;
    this.#startHeight = opts.startHeight;
    this.#maxBlocks = opts.maxBlocksPerSync;
    this.#log = opts.log ?? silentLogger;
  }

  /** The node's network, asked once. */
  async network(): Promise<BitcoinNetworkName> {
    if (this.#network !== null) return this.#network;
    const info = await this.#rpc.getChainInfo();
    const network = NODE_CHAINS.get(info.chain);
    if (network === undefined) {
      throw new CustosError('UNAVAILABLE', `the chain node serves an unknown chain "${info.chain}"`);
    }
    this.#network = network;
    return network;
  }

  /** The tracked tip height, or null before the first block. */
  get tipHeight(): number | null {
    return this.#tracker?.tip?.height ?? null;
  }

  /** Whether the last sync reached the node's tip. */
  get caughtUp(): boolean {
    return this.#caughtUp;
  }

  /**
   * Follows the node: refreshes the watched wallets from governance, then
   * applies new blocks (undoing reorganized ones) until the tracker reaches
   * the node's tip or the round budget is spent, and saves the state.
   */
  sync(state: GovernanceState): Promise<SyncResult> {
    // Callers that arrive while a sync waits its turn share it (with the newest state given): it
    // starts after each of them asked, so each gets a sync as fresh as its own would have been.
    this.#pendingState = state;
    if (this.#pendingSync !== null) return this.#pendingSync;
    const run = this.#locked(() => {
      this.#pendingSync = null;
      return this.#syncNow(this.#pendingState ?? state);
    });
    this.#pendingSync = run;
    return run;
  }

  async #syncNow(state: GovernanceState): Promise<SyncResult> {
    await this.#load();
    const network = await this.network();
    this.#refreshWallets(state, network);
    await this.#readChangeCounters();
    let tracker = this.#ensureTracker();
    let result: SyncResult = { tip: tracker.tip, applied: 0, disconnected: 0, caughtUp: false };
    let changed = false;
    try {
      for (let round = 0; round < MAX_SYNC_ROUNDS; round++) {
        this.#rereadFrom = null;
        result = await syncChain(this.#rpc, tracker, {
          startHeight: this.#startHeight,
          maxBlocks: this.#maxBlocks,
        });
        if (result.applied > 0 || result.disconnected > 0) {
          changed = true;
          this.#generation++;
        }
        const reread = this.#rereadFrom as number | null;
        if (reread !== null) {
          tracker = this.#rewind(tracker, reread);
          result = { ...result, tip: tracker.tip, caughtUp: false };
          continue;
        }
        if (result.caughtUp) break;
      }
    } finally {
      this.#caughtUp = result.caughtUp;
      if (changed || this.#indicesChanged) await this.#save();
    }
    return result;
  }

  /**
   * Builds the PSBT for an intent from the wallet's unreserved coins and
   * reserves the coins it spends, replacing any earlier reservation of this
   * intent. A refusal (INSUFFICIENT_FUNDS, INVALID_VALUE for an amount or
   * address that cannot be paid) is a decision; UNAVAILABLE means retry.
   */
  build(order: BuildOrder): Promise<Result<BuiltPsbt>> {
    return this.#locked(async () => {
      const tracker = this.#tracker;
      const tip = tracker?.tip?.height;
      if (tracker === null || tip === undefined || !this.#caughtUp) {
        throw new CustosError('UNAVAILABLE', 'the wallet tracker has not caught up with the chain node yet');
      }
      const wallet = this.#wallets.get(order.wallet);
      if (wallet === undefined) {
        throw new CustosError(
          'UNAVAILABLE',
          `wallet ${order.wallet} is not watched: is the chain node on the wallet's network?`,
        );
      }
      const changeIndex = await this.#allocateChangeIndex(wallet);
      const coins = this.#matureCoins(tracker, wallet.id, tip);
      const rows = this.#store.chain;
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const reserved = await rows.reservations();
        const built = selectAndBuild(wallet.descriptor, coins, order, changeIndex, (outpoint) => {
          const holder = reserved.get(outpoint);
          return holder !== undefined && holder !== order.intent;
        });
        if (!built.ok) return built;
        const outpoints = built.value.inputs.map((u) => `${u.txid}:${u.vout}`);
        // The primary key decides: false when another intent took one of these coins meanwhile.
        if (await rows.reserve(order.intent, outpoints)) return built;
      }
      throw new CustosError('UNAVAILABLE', 'UTXO reservations kept changing under this build; retry');
    });
  }

  /**
   * Sets the coins reserved for one intent to exactly `outpoints` (none: releases them).
   * UNAVAILABLE when one of them is another intent's.
   */
  async reserve(intent: string, outpoints: readonly string[]): Promise<void> {
    if (!(await this.#store.chain.reserve(intent, outpoints))) {
      throw new CustosError('UNAVAILABLE', 'a coin of this intent is reserved for another intent; retry');
    }
  }

  /** Frees the coins reserved for these intents (refused, expired, or their spend confirmed). */
  release(intents: ReadonlySet<string>): Promise<number> {
    return this.#store.chain.release(intents);
  }

  /** The intents holding reservations now. */
  reservedIntents(): Promise<ReadonlySet<string>> {
    return this.#store.chain.reservedIntents();
  }

  /** Outpoints (`txid:vout`) reserved for an intent. */
  reservedFor(intent: string): Promise<readonly string[]> {
    return this.#store.chain.reservedFor(intent);
  }

  /** Balance, coin count and next unused receive address of every Bitcoin wallet in governance. */
  async summaries(state: GovernanceState): Promise<WalletSummary[]> {
    await this.#locked(() => this.#load());
    const out: WalletSummary[] = [];
    for (const w of state.wallets.values()) {
      const parsed = parseWallet(w);
      if (parsed === null) continue;
      const watched = this.#wallets.get(w.id);
      const current =
        watched !== undefined &&
        w.kind === 'bitcoin-wsh-sortedmulti' &&
        watched.descriptorText === w.descriptor
          ? watched
          : null;
      const coins = current === null ? [] : (this.#tracker?.utxos(w.id, { includePending: true }) ?? []);
      const balance = coins.reduce((sum, u) => sum + u.value, 0n);
      const next = (current?.used[0] ?? -1) + 1;
      out.push({
        id: w.id,
        chain: w.chain,
        balance: balance.toString(),
        utxos: coins.length,
        receiveAddress: deriveAddress(parsed, 0, next).address,
        receiveIndex: next,
      });
    }
    return out;
  }

  /**
   * Finds in which block each txid was mined, reading blocks from just below
   * the saved cursor up to the node's tip (at most MAX_LOCATE_BLOCKS per call;
   * the next call goes on). With nothing to look for, the cursor just moves to
   * the tip. Returns the node's height with what was found.
   */
  async locate(txids: ReadonlySet<string>): Promise<{ height: number; found: Map<string, Located> }> {
    const height = await this.#rpc.getBlockCount();
    this.#nodeHeight = height;
    const found = new Map<string, Located>();
    let cursor = this.#scanCursor ?? (await this.#readScanCursor());
    if (txids.size === 0) {
      await this.#saveScanCursor(height);
      return { height, found };
    }
    // A txid not looked for before may be in a block at or just below the cursor (it was recorded
    // after the block was read): step back a few blocks for it; otherwise read only new blocks.
    const fresh = [...txids].some((t) => !this.#searched.has(t));
    this.#searched = new Set(txids);
    const base = cursor ?? height - FIRST_SCAN_LOOKBACK;
    const from = Math.max(this.#startHeight, fresh || cursor === null ? base - RESCAN_MARGIN : base + 1, 0);
    const upto = Math.min(height, from + MAX_LOCATE_BLOCKS - 1);
    for (let h = from; h <= upto; h++) {
      const hash = await this.#rpc.getBlockHash(h);
      const block = parseBlock(await this.#rpc.getBlockRaw(hash));
      for (const tx of block.txs) {
        if (txids.has(tx.txid) && !found.has(tx.txid)) found.set(tx.txid, { height: h, hash });
      }
      cursor = h;
    }
    if (cursor !== null) await this.#saveScanCursor(cursor);
    return { height, found };
  }

  /** Moves the confirmation cursor back (a transaction's block left the active chain). */
  async rewindScan(height: number): Promise<void> {
    const cursor = this.#scanCursor ?? (await this.#readScanCursor());
    if (cursor === null || height < cursor) await this.#saveScanCursor(Math.max(0, height));
    this.#searched = new Set();
  }

  /** The active chain's block hash at `height`, or null past the tip. */
  async blockHashAt(height: number): Promise<string | null> {
    try {
      return await this.#rpc.getBlockHash(height);
    } catch (err) {
      if (err instanceof CustosError && err.code === 'INVALID_VALUE') return null;
      throw err;
    }
  }

  /** The node's height as last seen by locate, or null. */
  get nodeHeight(): number | null {
    return this.#nodeHeight;
  }

  // ------------------------------------------------------------------ internals

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The tracker's watch function. It is called for every output of every block
   * applied, in block order, while the tracker's tip is still the block before.
   * When an address is used, the derivation is extended at once, so later
   * outputs of the same sync are caught; an earlier output of the same block
   * that pays a newly derived address (block order is not address order) has
   * the block read again after this sync round.
   */
  #watch = (script: Uint8Array): WatchedScript | null => {
    const height = (this.#tracker?.tip?.height ?? this.#startHeight - 1) + 1;
    if (height !== this.#block.height) this.#block = { height, misses: new Set() };
    const key = toHex(script);
    const hit = this.#scripts.get(key);
    if (hit === undefined) {
      this.#block.misses.add(key);
      return null;
    }
    const wallet = this.#wallets.get(hit.wallet);
    if (wallet !== undefined && hit.index > wallet.used[hit.branch]) {
      wallet.used[hit.branch] = hit.index;
      this.#indicesChanged = true;
      this.#derive(wallet, hit.branch, hit.index + 1 + this.#gap);
      for (const missed of this.#block.misses) {
        if (!this.#scripts.has(missed)) continue;
        this.#rereadFrom = Math.min(this.#rereadFrom ?? height, height);
        break;
      }
    }
    return hit;
  };

  /** Undoes blocks down to `height` so they are read again; without undo data that deep, rescans. */
  #rewind(tracker: UtxoTracker, height: number): UtxoTracker {
    this.#block = { height: -1, misses: new Set() };
    for (let tip = tracker.tip; tip !== null && tip.height >= height; tip = tracker.tip) {
      if (tracker.undoDepth === 0) {
        this.#log.warn({ height }, 'cannot undo that deep; scanning the wallets again');
        this.#tracker = this.#newTracker();
        return this.#tracker;
      }
      tracker.disconnectTip();
    }
    return tracker;
  }

  #newTracker(): UtxoTracker {
    this.#wholeSave = true;
    this.#generation++;
    // Undo deeper than one sync round, so a block read in this round can always be read again.
    return new UtxoTracker(this.#watch, { maxUndo: Math.max(DEFAULT_MAX_UNDO, this.#maxBlocks + 16) });
  }

  #derive(wallet: WatchedWallet, branch: 0 | 1, upto: number): void {
    for (let i = wallet.derived[branch]; i < upto; i++) {
      const d = deriveAddress(wallet.descriptor, branch, i);
      const key = toHex(d.script);
      // Two wallets with the same script would be a governance error; the first keeps it.
      if (!this.#scripts.has(key)) this.#scripts.set(key, { wallet: wallet.id, branch, index: i });
    }
    if (upto > wallet.derived[branch]) wallet.derived[branch] = upto;
  }

  #ensureTracker(): UtxoTracker {
    if (this.#tracker === null) this.#tracker = this.#newTracker();
    return this.#tracker;
  }

  /** Reads the saved state once. A state that does not restore is dropped (the scan starts over). */
  async #load(): Promise<void> {
    if (this.#loaded) return;
    const [walletsText, trackerJson] = await Promise.all([
      this.#store.kv.get(WALLETS_KEY),
      this.#store.chain.loadTracker(),
    ]);
    this.#loaded = true;
    if (walletsText === null) return;
    try {
      const doc = walletsDoc.parse(JSON.parse(walletsText));
      const wallets = new Map<string, WatchedWallet>();
      for (const w of doc.wallets) {
        const network = networkOfChain(w.chain);
        const parsed = network === undefined ? null : parseDescriptor(w.descriptor, network);
        if (parsed === null || !parsed.ok) {
          throw new CustosError('INVALID_VALUE', `saved wallet ${w.id} does not parse on ${w.chain}`);
        }
        const entry: WatchedWallet = {
          id: w.id,
          descriptorText: w.descriptor,
          descriptor: parsed.value,
          used: [w.used[0] ?? -1, w.used[1] ?? -1],
          derived: [0, 0],
        };
        wallets.set(w.id, entry);
      }
      this.#wallets = wallets;
      for (const w of wallets.values()) this.#deriveAhead(w);
      if (trackerJson !== null) {
        // fromJSON proves every stored coin against its funding transaction again.
        this.#tracker = UtxoTracker.fromJSON(trackerJson, this.#watch);
        this.#savedTip = this.#tracker.tip;
        this.#generation++;
      }
    } catch (err) {
      this.#log.warn(errorFields(err), 'saved chain state does not restore; scanning again');
      this.#wallets = new Map();
      this.#scripts.clear();
      this.#tracker = null;
    }
  }

  /** Watches exactly the Bitcoin wallets of governance on the node's network. */
  #refreshWallets(state: GovernanceState, network: BitcoinNetworkName): void {
    const wanted = new Map<string, { text: string; descriptor: WalletDescriptor }>();
    for (const w of state.wallets.values()) {
      if (networkOfChain(w.chain) !== network) continue;
      const parsed = parseWallet(w);
      if (parsed === null || w.kind !== 'bitcoin-wsh-sortedmulti') {
        this.#log.warn({ wallet: w.id }, 'wallet descriptor does not parse; not watched');
        continue;
      }
      wanted.set(w.id, { text: w.descriptor, descriptor: parsed });
    }
    // The same text on another network is another wallet (other addresses): compare both.
    const unchanged = (id: string, w: { text: string; descriptor: WalletDescriptor }): boolean => {
      const old = this.#wallets.get(id);
      return (
        old !== undefined && old.descriptorText === w.text && old.descriptor.network === w.descriptor.network
      );
    };
    const same = wanted.size === this.#wallets.size && [...wanted].every(([id, w]) => unchanged(id, w));
    if (same) return;
    const added = [...wanted].some(([id, w]) => !unchanged(id, w));
    const next = new Map<string, WatchedWallet>();
    for (const [id, w] of wanted) {
      const old = this.#wallets.get(id);
      const keep = old !== undefined && unchanged(id, w);
      next.set(id, {
        id,
        descriptorText: w.text,
        descriptor: w.descriptor,
        used: keep ? old.used : [-1, -1],
        derived: [0, 0],
      });
    }
    this.#wallets = next;
    this.#scripts.clear();
    for (const w of next.values()) this.#deriveAhead(w);
    this.#indicesChanged = true;
    if (added) {
      // A new wallet may have been paid before it was watched: read the chain again from its birth.
      if (this.#tracker !== null)
        this.#log.info({ wallets: [...wanted.keys()] }, 'wallets changed; rescanning');
      this.#tracker = this.#newTracker();
    }
  }

  #deriveAhead(w: WatchedWallet, handedOut = 0): void {
    this.#derive(w, 0, w.used[0] + 1 + this.#gap);
    this.#derive(w, 1, Math.max(w.used[1] + 1, handedOut) + this.#gap);
  }

  /** Change indices other coordinators handed out, and receive indices internal transfers pay, are watched here too. */
  async #readChangeCounters(): Promise<void> {
    for (const w of this.#wallets.values()) {
      const text = await this.#store.kv.get(changeKey(w.id));
      const counter = text === null ? 0 : parseCounter(text);
      this.#deriveAhead(w, counter);
      const receive = await this.#store.kv.get(receiveKey(w.id));
      if (receive !== null) this.#derive(w, 0, parseCounter(receive) + this.#gap);
    }
  }

  /**
   * Issue 13: an internal transfer is about to pay `wallet`'s receive address
   * at `index`. Records the index (kv, compare-and-set, so every coordinator
   * reads the highest) and watches up to it plus the gap from now on, before
   * the transaction exists: the coins show up in the wallet's balance and in
   * the scan however far the index is past the last deposit. A wallet this
   * coordinator does not watch (another network) is left alone.
   */
  watchReceive(wallet: string, index: number): Promise<void> {
    return this.#locked(async () => {
      await this.#load();
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const text = await this.#store.kv.get(receiveKey(wallet));
        const stored = text === null ? 0 : parseCounter(text);
        if (stored > index) break;
        if (await this.#store.kv.compareAndSet(receiveKey(wallet), text, String(index + 1))) break;
      }
      const w = this.#wallets.get(wallet);
      if (w !== undefined) this.#derive(w, 0, index + 1 + this.#gap);
    });
  }

  async #allocateChangeIndex(w: WatchedWallet): Promise<number> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const text = await this.#store.kv.get(changeKey(w.id));
      const stored = text === null ? 0 : parseCounter(text);
      const next = Math.max(stored, w.used[1] + 1);
      // Issue 8, item 4: never past the gap limit beyond the last change seen paid. Each signer
      // refuses change further than CHANGE_GAP_LIMIT past the change it knows used
      // (CHANGE_BEYOND_GAP), and a wallet restored from the descriptor would not find it. Indexes
      // handed to builds that were never broadcast (refused, expired, built again) would walk the
      // counter away; past the bound it starts again at the first index not seen paid: at worst a
      // change address paid twice before a block, never coins out of sight.
      const index = next > changeIndexLimit(w.used[1]) ? w.used[1] + 1 : next;
      if (await this.#store.kv.compareAndSet(changeKey(w.id), text, String(index + 1))) {
        this.#deriveAhead(w, index + 1);
        return index;
      }
    }
    throw new CustosError('UNAVAILABLE', 'the change index counter kept changing; retry');
  }

  /**
   * The wallet's coins that are mature at `tip`, largest first (then by outpoint): computed once
   * per block (or change of the tracker), not per build.
   */
  #matureCoins(tracker: UtxoTracker, wallet: string, tip: number): readonly WalletUtxo[] {
    const cached = this.#coins.get(wallet);
    if (cached !== undefined && cached.generation === this.#generation && cached.tip === tip) {
      return cached.list;
    }
    const list = spendable(tracker.utxos(wallet, { includePending: true }), tip).sort((a, b) =>
      a.value === b.value ? compareOutpoints(a, b) : a.value > b.value ? -1 : 1,
    );
    this.#coins.set(wallet, { generation: this.#generation, tip, list });
    return list;
  }

  async #save(): Promise<void> {
    const wallets = [...this.#wallets.values()].map((w) => ({
      id: w.id,
      chain: chainOfNetwork(w.descriptor.network),
      descriptor: w.descriptorText,
      used: [w.used[0], w.used[1]],
    }));
    await this.#store.kv.set(WALLETS_KEY, JSON.stringify({ v: 2, wallets }));
    if (this.#tracker !== null) await this.#saveTracker(this.#tracker);
    this.#indicesChanged = false;
  }

  /** Writes the rows of what changed in the tracker since its last save. */
  async #saveTracker(t: UtxoTracker): Promise<void> {
    const changes = t.takeChanges();
    const upsert: TrackerChanges['upsert'][number][] = [];
    const remove: string[] = [];
    for (const outpoint of changes.outpoints) {
      const at = outpoint.lastIndexOf(':');
      const u = t.get(outpoint.slice(0, at), Number(outpoint.slice(at + 1)));
      if (u === null) {
        remove.push(outpoint);
        continue;
      }
      upsert.push({
        coin: {
          txid: u.txid,
          vout: u.vout,
          value: u.value.toString(),
          script: toHex(u.script),
          wallet: u.wallet,
          branch: u.branch,
          index: u.index,
          height: u.height,
          coinbase: u.coinbase,
        },
        pending: u.pending,
        raw: toHex(u.prevTx),
      });
    }
    const heights = t.undoHeights();
    const from = changes.lowestHeight;
    const undo = (from === null ? [] : heights.filter((h) => h >= from)).map((height) => ({
      height,
      body: JSON.stringify(t.undoJson(height)),
    }));
    try {
      const saved = await this.#store.chain.saveTracker({
        base: this.#savedTip,
        tip: t.tip,
        maxUndo: t.maxUndo,
        changes: {
          upsert,
          remove,
          rewriteFrom: from,
          undo,
          undoFrom: heights[0] ?? (t.tip?.height ?? -1) + 1,
        },
        full: () => t.toJSON(),
        whole: this.#wholeSave,
      });
      this.#wholeSave = false;
      // Rows another coordinator moved ahead are its: this process no longer knows what they hold.
      this.#savedTip = saved === 'ahead' ? undefined : t.tip;
    } catch (err) {
      this.#savedTip = undefined;
      throw err;
    }
  }

  async #readScanCursor(): Promise<number | null> {
    const text = await this.#store.kv.get(SCAN_KEY);
    const value = text === null ? null : parseCounter(text);
    this.#scanCursor = value;
    return value;
  }

  async #saveScanCursor(height: number): Promise<void> {
    if (this.#scanCursor === height) return;
    this.#scanCursor = height;
    await this.#store.kv.set(SCAN_KEY, String(height));
  }
}

function parseWallet(w: Wallet): WalletDescriptor | null {
  if (w.kind !== 'bitcoin-wsh-sortedmulti') return null;
  const network = networkOfChain(w.chain);
  if (network === undefined) return null;
  const parsed = parseDescriptor(w.descriptor, network);
  return parsed.ok ? parsed.value : null;
}

function parseCounter(text: string): number {
  const n = /^(?:0|[1-9][0-9]{0,9})$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 0x7fffffff) {
    throw new CustosError('INTERNAL', 'a saved chain counter is not a small non-negative integer');
  }
  return n;
}

function compareOutpoints(a: WalletUtxo, b: WalletUtxo): number {
  return a.txid < b.txid ? -1 : a.txid > b.txid ? 1 : a.vout - b.vout;
}

/** Coins that may be spent now by maturity (reservations are checked per build). */
function spendable(coins: readonly TrackedUtxo[], tip: number): WalletUtxo[] {
  return coins
    .filter((u) => (u.coinbase ? u.confirmations(tip) >= 100 : u.confirmations(tip) >= 1))
    .map((u) => ({
      txid: u.txid,
      vout: u.vout,
      value: u.value,
      branch: u.branch,
      index: u.index,
      prevTx: u.prevTx,
    }));
}

/**
 * Builds from the largest coins not promised to another intent: the first
 * FIRST_CANDIDATES of them, then twice as many while they do not cover the
 * amount and more are left. buildPsbt selects largest first and stops at the
 * first coin that covers amount and fee, so a prefix that covers them selects
 * exactly what the whole list would; a refusal for want of funds is only
 * given once every free coin was offered.
 */
function selectAndBuild(
  wallet: WalletDescriptor,
  coins: readonly WalletUtxo[],
  order: BuildOrder,
  changeIndex: number,
  reservedElsewhere: (outpoint: string) => boolean,
): Result<BuiltPsbt> {
  const free: WalletUtxo[] = [];
  let next = 0;
  for (let want = FIRST_CANDIDATES; ; want *= 2) {
    while (free.length < want && next < coins.length) {
      const u = coins[next++] as WalletUtxo;
      if (!reservedElsewhere(`${u.txid}:${u.vout}`)) free.push(u);
    }
    const built = buildUnderCap(wallet, free, order, changeIndex);
    if (built.ok || built.code !== 'INSUFFICIENT_FUNDS' || next >= coins.length) return built;
  }
}

/**
 * buildPsbt, then once more at a lower rate if the fee went over the policy's
 * total fee cap (every signer would refuse FEE_TOO_HIGH otherwise).
 */
function buildUnderCap(
  wallet: WalletDescriptor,
  utxos: readonly WalletUtxo[],
  order: BuildOrder,
  changeIndex: number,
): Result<BuiltPsbt> {
  const request = {
    wallet,
    utxos,
    to: order.to,
    amount: order.amount,
    ...(order.outputs === undefined ? {} : { outputs: order.outputs }),
    changeIndex,
  };
  const first = buildPsbt({ ...request, feeRate: order.feeRate });
  if (!first.ok || order.maxFee === null || first.value.fee <= order.maxFee) return first;
  const lower = order.maxFee / BigInt(Math.max(1, first.value.vsize));
  if (lower < 1n || lower >= order.feeRate) {
    return refuse(
      'FEE_TOO_HIGH',
      `the fee ${first.value.fee} sat is over the policy cap ${order.maxFee} sat`,
    );
  }
  const second = buildPsbt({ ...request, feeRate: lower });
  if (second.ok && second.value.fee > order.maxFee) {
    return refuse(
      'FEE_TOO_HIGH',
      `the fee ${second.value.fee} sat is over the policy cap ${order.maxFee} sat`,
    );
  }
  return second;
}
