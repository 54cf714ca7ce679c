/**
 * The watcher's view of the governed Bitcoin wallets' coins, fed by its own
 * node (issue 12). Pure state, no I/O: {@link followChain} reads the node.
 *
 * Every governed `bitcoin-wsh-sortedmulti` wallet's receive and change
 * scripts are derived up to the last used index plus the gap limit, as the
 * coordinator's tracker and any BIP 44 wallet do. Outputs paying one of them
 * become tracked coins; a transaction with an input spending a tracked coin
 * is a spend, reported once (first seen in the mempool or in a block) with
 * the inputs it spent, for the watcher to match against what the signers
 * signed. Mempool outputs are tracked too, so a spend of an unconfirmed
 * change output is seen as well.
 *
 * A coin a mempool transaction spends stays a coin until a block spends
 * it: a second transaction spending it (a replacement by fee, a double
 * spend) is a spend too, reported under its own txid.
 *
 * Reorgs: each block read through {@link CoinView.readBlock} keeps a journal
 * of the coins it created and removed; {@link CoinView.undoBlock} (the tip's
 * block, when the node disconnects it) puts the removed coins back and drops
 * the created ones, so a coin whose spend was reorganized away is watched
 * again and another spend of it is reported. A spend already reported stays
 * reported (the watcher judged it, and a freeze it signed stands). The
 * node is trusted to serve the active chain.
 */
import {
  deriveAddress,
  networkOfChain,
  type ParsedTx,
  parseDescriptor,
  type WalletDescriptor,
} from '@custos/bitcoin';
import { type GovernanceState, isBitcoinWallet, toHex } from '@custos/core';

/** One wallet coin a spend consumed. */
export interface SpentCoin {
  readonly txid: string;
  readonly vout: number;
  readonly value: string;
  readonly wallet: string;
}

/** A transaction that spends at least one coin of a governed wallet. */
export interface Spend {
  readonly txid: string;
  readonly inputs: readonly SpentCoin[];
  /** Where it was first seen: 'mempool', or the height of the block. */
  readonly seenIn: 'mempool' | number;
}

interface WalletScripts {
  readonly id: string;
  readonly descriptor: WalletDescriptor;
  readonly derived: [number, number];
  readonly used: [number, number];
}

/** BIP 44's gap limit, the default. */
export const DEFAULT_GAP = 20;
/** Blocks whose journal is kept for {@link CoinView.undoBlock}: deeper reorgs than this are not undone. */
export const MAX_UNDO_DEPTH = 100;

/** What reading one block changed, newest last, so a disconnected block can be undone. */
interface BlockJournal {
  readonly hash: string;
  readonly height: number;
  /** Coin keys the block's transactions created. */
  readonly added: string[];
  /** Coins the block's transactions spent, with their keys. */
  readonly removed: [string, SpentCoin][];
}

/** What {@link CoinView.undoBlock} changed. */
export interface UndoneBlock {
  readonly hash: string;
  readonly height: number;
  /** Coins watched again: their spend was in the disconnected block. */
  readonly restored: number;
  /** Coins no longer watched: the disconnected block created them. */
  readonly dropped: number;
}

export class CoinView {
  readonly #gap: number;
  readonly #wallets = new Map<string, WalletScripts>();
  readonly #scripts = new Map<string, { wallet: string; branch: 0 | 1; index: number }>();
  readonly #coins = new Map<string, SpentCoin>();
  /**
   * Spends reported from the mempool and not yet seen in a block, so each is reported once however
   * often the mempool lists it (or the node announces it) and not again when it is mined. Block
   * transactions are read once each, in height order, and not remembered. A mempool transaction
   * that spent nothing is not remembered either: read again later, when a coin it spends may have
   * become known, it is judged then. A mempool spend that is never mined stays here.
   */
  readonly #fromMempool = new Set<string>();
  /** The blocks read, oldest first, at most {@link MAX_UNDO_DEPTH}. */
  readonly #journals: BlockJournal[] = [];
  /** The journal of the block being read, while {@link readBlock} runs. */
  #journal: BlockJournal | null = null;

  constructor(gap = DEFAULT_GAP) {
    this.#gap = gap;
  }

  /** Watches every Bitcoin wallet governance names (new ones are added; known ones keep their counters). */
  setWallets(state: GovernanceState): void {
    for (const w of state.wallets.values()) {
      if (!isBitcoinWallet(w) || this.#wallets.has(w.id)) continue;
      const network = networkOfChain(w.chain);
      if (network === undefined) continue;
      const parsed = parseDescriptor(w.descriptor, network);
      if (!parsed.ok) continue;
      const entry: WalletScripts = { id: w.id, descriptor: parsed.value, derived: [0, 0], used: [-1, -1] };
      this.#wallets.set(w.id, entry);
      this.#derive(entry, 0, this.#gap);
      this.#derive(entry, 1, this.#gap);
    }
  }

  get coinCount(): number {
    return this.#coins.size;
  }

  /** The hash and height of the last block read (what a `D` for the tip must name), or null. */
  get tip(): { readonly hash: string; readonly height: number } | null {
    const last = this.#journals.at(-1);
    return last === undefined ? null : { hash: last.hash, height: last.height };
  }

  /**
   * Reads one transaction; returns the spend when it consumes a tracked coin, once per txid (a
   * transaction seen in the mempool is not reported again when mined). Block transactions go
   * through {@link readBlock}, which journals them.
   */
  read(parsed: ParsedTx, seenIn: 'mempool' | number, coinbase = false): Spend | null {
    const mined = seenIn !== 'mempool';
    const { tx, txid } = parsed;
    if (!mined && this.#fromMempool.has(txid)) return null;
    const reported = mined && this.#fromMempool.delete(txid);
    const inputs: SpentCoin[] = [];
    if (!coinbase) {
      for (let i = 0; i < tx.inputsLength; i++) {
        const input = tx.getInput(i);
        if (input.txid === undefined || input.index === undefined) continue;
        const key = `${toHex(input.txid)}:${input.index}`;
        const coin = this.#coins.get(key);
        if (coin === undefined) continue;
        if (mined) {
          this.#coins.delete(key);
          this.#journal?.removed.push([key, coin]);
        }
        // A mempool spend leaves the coin in place until mined: a conflicting spend of it (a
        // replacement, a double spend) is judged too.
        inputs.push(coin);
      }
    }
    for (let vout = 0; vout < tx.outputsLength; vout++) {
      const output = tx.getOutput(vout);
      if (output.script === undefined || output.amount === undefined) continue;
      const hit = this.#scripts.get(toHex(output.script));
      if (hit === undefined) continue;
      const wallet = this.#wallets.get(hit.wallet);
      if (wallet !== undefined && hit.index > wallet.used[hit.branch]) {
        wallet.used[hit.branch] = hit.index;
        this.#derive(wallet, hit.branch, hit.index + 1 + this.#gap);
      }
      const key = `${txid}:${vout}`;
      if (mined && !this.#coins.has(key)) this.#journal?.added.push(key);
      this.#coins.set(key, { txid, vout, value: output.amount.toString(), wallet: hit.wallet });
    }
    if (inputs.length === 0 || reported) return null;
    if (!mined) this.#fromMempool.add(txid);
    return { txid, inputs, seenIn };
  }

  /**
   * Reads a block's transactions in order (the first is its coinbase) and keeps a journal of the
   * coins they created and spent, so {@link undoBlock} can take the block back. Returns the spends.
   */
  readBlock(block: { readonly hash: string; readonly txs: readonly ParsedTx[] }, height: number): Spend[] {
    const journal: BlockJournal = { hash: block.hash, height, added: [], removed: [] };
    this.#journal = journal;
    const spends: Spend[] = [];
    try {
      for (const [i, tx] of block.txs.entries()) {
        const spend = this.read(tx, height, i === 0);
        if (spend !== null) spends.push(spend);
      }
    } finally {
      this.#journal = null;
    }
    this.#journals.push(journal);
    if (this.#journals.length > MAX_UNDO_DEPTH) this.#journals.shift();
    return spends;
  }

  /**
   * Takes back the last block read, which the node disconnected: the coins it spent are coins
   * again, those it created are not. Only the tip can be undone (a node disconnects from the tip
   * down); any other hash, or one older than {@link MAX_UNDO_DEPTH} blocks, answers null and
   * changes nothing.
   */
  undoBlock(hash: string): UndoneBlock | null {
    const journal = this.#journals.at(-1);
    if (journal === undefined || journal.hash !== hash) return null;
    this.#journals.pop();
    // Spent coins back first, then created ones out: a coin created and spent in the block goes.
    for (const [key, coin] of journal.removed) this.#coins.set(key, coin);
    for (const key of journal.added) this.#coins.delete(key);
    return {
      hash: journal.hash,
      height: journal.height,
      restored: journal.removed.filter(([key]) => this.#coins.has(key)).length,
      dropped: journal.added.length,
    };
  }

  #derive(wallet: WalletScripts, branch: 0 | 1, upto: number): void {
    for (let i = wallet.derived[branch]; i < upto; i++) {
      const key = toHex(deriveAddress(wallet.descriptor, branch, i).script);
      if (!this.#scripts.has(key)) this.#scripts.set(key, { wallet: wallet.id, branch, index: i });
    }
    if (upto > wallet.derived[branch]) wallet.derived[branch] = upto;
  }
}
