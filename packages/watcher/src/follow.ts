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
 * Limits of this first slice: a reorg is not undone (a coin removed by a
 * reorganized block stays removed; the spend it reported was reported), and
 * the node is trusted to serve the active chain.
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

export class CoinView {
  readonly #gap: number;
  readonly #wallets = new Map<string, WalletScripts>();
  readonly #scripts = new Map<string, { wallet: string; branch: 0 | 1; index: number }>();
  readonly #coins = new Map<string, SpentCoin>();
  /**
   * Transactions read from the mempool and not yet seen in a block, so each is judged once however
   * often the mempool lists it and again when it is mined. Block transactions are read once each, in
   * height order, and not remembered. A mempool transaction that is never mined stays here.
   */
  readonly #fromMempool = new Set<string>();

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

  /** Reads one transaction; returns the spend when it consumes a tracked coin, once per txid. */
  read(parsed: ParsedTx, seenIn: 'mempool' | number, coinbase = false): Spend | null {
    if (seenIn === 'mempool') {
      if (this.#fromMempool.has(parsed.txid)) return null;
      this.#fromMempool.add(parsed.txid);
    } else if (this.#fromMempool.delete(parsed.txid)) {
      return null;
    }
    const { tx, txid } = parsed;
    const inputs: SpentCoin[] = [];
    if (!coinbase) {
      for (let i = 0; i < tx.inputsLength; i++) {
        const input = tx.getInput(i);
        if (input.txid === undefined || input.index === undefined) continue;
        const key = `${toHex(input.txid)}:${input.index}`;
        const coin = this.#coins.get(key);
        if (coin === undefined) continue;
        this.#coins.delete(key);
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
      this.#coins.set(`${txid}:${vout}`, { txid, vout, value: output.amount.toString(), wallet: hit.wallet });
    }
    return inputs.length === 0 ? null : { txid, inputs, seenIn };
  }

  #derive(wallet: WalletScripts, branch: 0 | 1, upto: number): void {
    for (let i = wallet.derived[branch]; i < upto; i++) {
      const key = toHex(deriveAddress(wallet.descriptor, branch, i).script);
      if (!this.#scripts.has(key)) this.#scripts.set(key, { wallet: wallet.id, branch, index: i });
    }
    if (upto > wallet.derived[branch]) wallet.derived[branch] = upto;
  }
}
