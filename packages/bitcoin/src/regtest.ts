/**
 * An in-process Bitcoin regtest node (bcoin) for tests and `custos dev`.
 *
 * Why bcoin: it is plain JavaScript, starts in a fraction of a second with an
 * in-memory chain, and serves the Bitcoin Core JSON-RPC subset rpc.ts uses,
 * so the same client talks to it and to a production Core node. This module
 * is a subpath export (`@custos/bitcoin/regtest`), never re-exported from the
 * package index: the signer imports @custos/bitcoin and must not pull in a
 * whole node implementation.
 *
 * Speed: segwit on regtest is a BIP 9 deployment that locks in after three
 * 144-block windows, so 431 blocks are needed before P2WSH spends are valid.
 * They are mined in-process through bcoin's miner and chain (no RPC round
 * trip per block), which takes a few hundred milliseconds.
 *
 * One deliberate difference from stock bcoin: its `sendrawtransaction`
 * relays in the background and always answers the txid, even for a
 * transaction the mempool refuses. Bitcoin Core answers with an error
 * (RPC_VERIFY_REJECTED, -26, and the reject reason). The node started here
 * replaces that one handler with a Core-faithful one, so tests see what a
 * production node would say. It also replaces by fee as Core does (BIP 125
 * as Core 28 applies it, full RBF): a transaction spending an output a
 * mempool transaction spends evicts that transaction and its descendants if
 * it pays a higher fee rate than each one it conflicts with directly and an
 * absolute fee above theirs all by at least its own size at the incremental
 * relay fee (1 sat/vB); else it is refused `insufficient fee`. bcoin 1.0
 * refuses every such spend, which would make fee bumping untestable.
 *
 * Funding: coinbases are mined to a harness P2WPKH key this module holds in
 * memory; `fund` spends mature ones with a transaction built and signed by
 * @scure/btc-signer and submitted over JSON-RPC like any other.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { CustosError, toHex } from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { p2wpkh, Transaction } from '@scure/btc-signer';
import type * as Bcoin from 'bcoin';
import { BitcoinRpc } from './rpc.js';

const require = createRequire(import.meta.url);

export interface RegtestNode {
  /** http://127.0.0.1:<port>/ (no credentials in it). */
  readonly rpcUrl: string;
  readonly rpcUser: string;
  readonly rpcPassword: string;
  readonly rpc: BitcoinRpc;
  /** Mines `n` blocks whose coinbase pays `script`; returns their hashes. Mempool transactions are included. */
  mineToScript(script: Uint8Array, n: number): Promise<string[]>;
  /** Mines `n` blocks to the harness's own key (which keeps `fund` supplied). */
  mine(n: number): Promise<void>;
  /**
   * Sends `value` satoshis to `script` from the harness's mined coins, through JSON-RPC
   * sendrawtransaction. The transaction is in the mempool, not yet in a block: call `mine(1)`.
   */
  fund(script: Uint8Array, value: bigint): Promise<{ txid: string; vout: number; raw: Uint8Array }>;
  /** Mines until BIP 141 segwit is active for the next block (idempotent). */
  activateSegwit(): Promise<void>;
  /** The height of the chain tip. */
  height(): number;
  /**
   * Replaces the last `depth` blocks with `depth + 1` empty ones mined on the block below them
   * (a reorg, as a longer competing chain causes); their transactions go back to the mempool.
   * Returns the new blocks' hashes.
   */
  reorg(depth: number): Promise<string[]>;
  /**
   * Calls `listener` for what the node does, in order: a transaction the mempool accepted, a block
   * connected, a block disconnected (the events Core's ZMQ publishers announce). Returns the
   * unsubscribe function.
   */
  onEvent(listener: (event: RegtestEvent) => void): () => void;
  close(): Promise<void>;
}

/** A node event (display-order hex hashes, raw serializations with witnesses). */
export type RegtestEvent =
  | { readonly kind: 'tx'; readonly txid: string; readonly raw: Uint8Array }
  | {
      readonly kind: 'connect';
      readonly hash: string;
      readonly height: number;
      readonly txs: readonly { readonly txid: string; readonly raw: Uint8Array }[];
    }
  | { readonly kind: 'disconnect'; readonly hash: string; readonly height: number };

export interface RegtestOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  /** The RPC password; random when not given. */
  readonly apiKey?: string;
  /**
   * A folder for the chain on disk (bcoin with leveldown), so a restart finds
   * the same blocks: `custos dev` uses it. Without it the chain lives in
   * memory, right for tests. `fund` only spends coins mined by this process
   * (its harness key is never written down).
   */
  readonly prefix?: string;
}

/** bcoin takes any user name and checks the password against its API key. */
const RPC_USER = 'custos';
const COINBASE_MATURITY = 100;
/** Fee rate of harness transactions, sat/vB: above bcoin's 1 sat/vB minimum relay fee. */
const HARNESS_FEE_RATE = 2n;
/** Change under this goes to the fee (a dust output would be refused). */
const MIN_CHANGE = 1_000n;
/** At most this many harness coins are combined for one `fund`. */
const MAX_FUND_INPUTS = 100;
/** Upper bound on blocks mined per call, so a wrong argument cannot hang a test run. */
const MAX_BLOCKS_PER_CALL = 10_000;
/** Bitcoin Core's RPC error codes (src/rpc/protocol.h). */
const RPC_MISC_ERROR = -1;
const RPC_DESERIALIZATION_ERROR = -22;
const RPC_VERIFY_ERROR = -25;
const RPC_VERIFY_REJECTED = -26;
const RPC_VERIFY_ALREADY_IN_CHAIN = -27;

interface HarnessCoin {
  readonly txid: string;
  readonly vout: number;
  readonly value: bigint;
  /** Height of the coinbase's block; null for change outputs (spendable at once). */
  readonly coinbaseHeight: number | null;
}

/** An error bweb's RPC layer turns into a JSON-RPC error with this code (it reads `type` and `code`). */
/** Core's default incremental relay fee, sat/vB (-incrementalrelayfee=0.00001 BTC/kvB). */
const INCREMENTAL_RELAY_FEE = 1;

/**
 * Core's replacement rules (validation.cpp, PreChecks and ReplacementChecks;
 * BIP 125 rules 3, 4 and 6, full RBF): evicts the mempool transactions `tx`
 * conflicts with, and their descendants, when it may replace them, and
 * returns them; refuses it (RPC_VERIFY_REJECTED, `insufficient fee`) when not.
 * No conflict: nothing evicted.
 */
async function replaceByFee(node: Bcoin.FullNode, tx: Bcoin.TX): Promise<Bcoin.MempoolEntry[]> {
  const direct = new Map<string, Bcoin.MempoolEntry>();
  let inputValue = 0;
  for (const input of tx.inputs) {
    const spender = node.mempool.getSpent(input.prevout.hash, input.prevout.index);
    if (spender !== undefined) direct.set(spender.tx.hash('hex'), spender);
  }
  if (direct.size === 0) return [];
  for (const input of tx.inputs) {
    // Spent in the mempool by a conflict, so read from the chain (a parent in the mempool: refused below).
    const coin = await node.chain.getCoin(input.prevout.hash, input.prevout.index);
    if (coin === null) throw rpcError(RPC_VERIFY_ERROR, 'bad-txns-inputs-missingorspent');
    inputValue += coin.value;
  }
  const fee = inputValue - tx.outputs.reduce((s, o) => s + o.value, 0);
  const vsize = tx.getVirtualSize();
  const all = new Map(direct);
  for (const e of direct.values())
    for (const d of node.mempool.getDescendants(e)) all.set(d.tx.hash('hex'), d);
  const replacedFees = [...all.values()].reduce((s, e) => s + e.fee, 0);
  for (const e of direct.values()) {
    // Rule 6: a higher fee rate than each transaction replaced directly (compared exactly).
    if (fee * e.size <= e.fee * vsize) {
      throw rpcError(
        RPC_VERIFY_REJECTED,
        `insufficient fee, rejecting replacement ${tx.txid()}; new feerate not above ${e.tx.txid()}'s`,
      );
    }
  }
  // Rules 3 and 4: more than everything replaced, by at least its own relay cost.
  if (fee < replacedFees + INCREMENTAL_RELAY_FEE * vsize) {
    throw rpcError(
      RPC_VERIFY_REJECTED,
      `insufficient fee, rejecting replacement ${tx.txid()}, not enough additional fees to relay; ${fee - replacedFees} < ${INCREMENTAL_RELAY_FEE * vsize}`,
    );
  }
  const evicted = [...all.values()];
  for (const e of direct.values()) node.mempool.evictEntry(e);
  return evicted;
}

function rpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { type: 'RPCError', code });
}

function isVerifyError(err: unknown): err is Bcoin.VerifyErrorLike {
  return (
    typeof err === 'object' && err !== null && 'type' in err && err.type === 'VerifyError' && 'reason' in err
  );
}

function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_BLOCKS_PER_CALL) {
    throw new CustosError('INVALID_VALUE', `block count must be an integer from 0 to ${MAX_BLOCKS_PER_CALL}`);
  }
}

/** bcoin 1.0.2 keys coins by hex in internal byte order: the txid's bytes reversed. */
function internalHex(txid: string): string {
  return Buffer.from(txid, 'hex').reverse().toString('hex');
}

/**
 * Starts a regtest node listening on 127.0.0.1 only.
 *
 * @example
 * const node = await startRegtestNode();
 * await node.activateSegwit();
 * const { txid } = await node.fund(p2wpkh(pub).script, 100_000n);
 * await node.mine(1);
 * await node.close();
 */
export async function startRegtestNode(opts: RegtestOptions = {}): Promise<RegtestNode> {
  const port = opts.port ?? 0;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65_535) {
    throw new CustosError('INVALID_VALUE', 'port must be an integer from 0 to 65535');
  }
  const apiKey = opts.apiKey ?? randomBytes(24).toString('hex');
  const bcoin = require('bcoin') as typeof Bcoin;
  const node = new bcoin.FullNode({
    network: 'regtest',
    memory: opts.prefix === undefined,
    ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }),
    workers: false,
    // No P2P traffic: no listening socket, and no seed to dial (regtest's default seed is
    // 127.0.0.1:48444, where another local node could be listening).
    listen: false,
    seeds: [],
    httpHost: '127.0.0.1',
    httpPort: port,
    apiKey,
    logLevel: 'none',
  });
  if (opts.prefix !== undefined) await node.ensure();
  await node.open();
  try {
    // The pool must be "connected" (with no peer to connect to): bcoin's pool handles a chain reset,
    // which invalidateblock causes, by asserting that it is, and the mempool is then never reset.
    await node.connect();
    installCoreSendRawTransaction(bcoin, node);
  } catch (err) {
    await node.close();
    throw err;
  }
  const address = node.http.address();
  const rpcUrl = `http://127.0.0.1:${address.port}/`;
  const rpc = new BitcoinRpc({ url: rpcUrl, username: RPC_USER, password: apiKey });

  // The harness key: coinbases pay it, `fund` spends from it. Held in memory only.
  const harnessKey = secp256k1.utils.randomSecretKey();
  const harnessScript = p2wpkh(secp256k1.getPublicKey(harnessKey, true)).script;
  const harnessAddress = bcoin.Address.fromScript(bcoin.Script.fromRaw(Buffer.from(harnessScript)));
  if (harnessAddress === null) throw new Error('BUG: bcoin cannot spell a P2WPKH script');
  const coins: HarnessCoin[] = [];

  // Mining and funding touch the same chain tip and coin list: one operation at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(op: () => Promise<T>): Promise<T> => {
    const run = queue.then(op, op);
    queue = run.catch(() => undefined);
    return run;
  };
  let closed = false;
  const live = (): void => {
    if (closed) throw new CustosError('UNAVAILABLE', 'regtest node is closed');
  };

  const mineTo = async (addr: Bcoin.Address, n: number, harness: boolean): Promise<string[]> => {
    const hashes: string[] = [];
    for (let i = 0; i < n; i++) {
      const block = await node.miner.mineBlock(node.chain.tip, addr);
      const entry = await node.chain.add(block);
      if (entry === null) throw new CustosError('INTERNAL', 'regtest node refused a block it mined');
      hashes.push(block.rhash());
      const coinbase = block.txs[0];
      if (harness && coinbase !== undefined) {
        for (const [vout, out] of coinbase.outputs.entries()) {
          if (out.value > 0) {
            coins.push({
              txid: coinbase.txid(),
              vout,
              value: BigInt(out.value),
              coinbaseHeight: entry.height,
            });
          }
        }
      }
    }
    return hashes;
  };

  const segwitActive = async (): Promise<boolean> => {
    const info = await rpc.call<unknown>('getblockchaininfo', []);
    return segwitStatus(info) === 'active';
  };

  const activateSegwit = async (): Promise<void> => {
    // Three BIP 9 windows of 144 blocks (started, locked in, active): 431 blocks from genesis. The
    // chain's own deployment state is read between blocks (no RPC per block); the node's answer
    // over RPC is the final word.
    for (let i = 0; i < 4 * 144 && !node.chain.state.hasWitness(); i++) {
      await mineTo(harnessAddress, 1, true);
    }
    if (!(await segwitActive())) throw new CustosError('INTERNAL', 'segwit did not activate on regtest');
  };

  /** Picks spendable harness coins worth at least `target`, dropping any spent or reorganized away. */
  const select = async (
    target: bigint,
    feeFor: (inputs: number) => bigint,
  ): Promise<HarnessCoin[] | null> => {
    const nextHeight = node.chain.height + 1;
    const picked: HarnessCoin[] = [];
    let total = 0n;
    // Bounded by the coin list, which only grows by mined blocks and fund calls.
    for (let i = 0; i < coins.length && picked.length < MAX_FUND_INPUTS; ) {
      const c = coins[i]!;
      if (c.coinbaseHeight !== null && nextHeight - c.coinbaseHeight < COINBASE_MATURITY) {
        i++;
        continue;
      }
      if ((await node.getCoin(internalHex(c.txid), c.vout)) === null) {
        coins.splice(i, 1);
        continue;
      }
      picked.push(c);
      total += c.value;
      if (total >= target + feeFor(picked.length)) return picked;
      i++;
    }
    return null;
  };

  const fund = async (
    script: Uint8Array,
    value: bigint,
  ): Promise<{ txid: string; vout: number; raw: Uint8Array }> => {
    if (value <= 0n) throw new CustosError('INVALID_VALUE', 'value must be positive');
    await activateSegwit();
    // P2WPKH input ~68 vB, outputs 9 + script bytes, P2WPKH change 31 vB, 11 vB of framing.
    const feeFor = (inputs: number): bigint =>
      HARNESS_FEE_RATE * BigInt(11 + 68 * inputs + 9 + script.length + 31);
    let picked = await select(value, feeFor);
    if (picked === null) {
      // Mature more coinbases, then try once more.
      await mineTo(harnessAddress, COINBASE_MATURITY, true);
      picked = await select(value, feeFor);
    }
    if (picked === null) throw new CustosError('INVALID_VALUE', `regtest harness cannot fund ${value} sat`);
    const tx = new Transaction({ allowUnknownOutputs: true });
    let total = 0n;
    for (const c of picked) {
      tx.addInput({ txid: c.txid, index: c.vout, witnessUtxo: { script: harnessScript, amount: c.value } });
      total += c.value;
    }
    tx.addOutput({ script, amount: value });
    const change = total - value - feeFor(picked.length);
    if (change >= MIN_CHANGE) tx.addOutput({ script: harnessScript, amount: change });
    tx.sign(harnessKey);
    tx.finalize();
    const raw = tx.extract();
    const txid = await rpc.sendRawTransaction(toHex(raw));
    const used = new Set(picked);
    for (let i = coins.length - 1; i >= 0; i--) if (used.has(coins[i]!)) coins.splice(i, 1);
    if (change >= MIN_CHANGE) coins.push({ txid, vout: 1, value: change, coinbaseHeight: null });
    return { txid, vout: 0, raw };
  };

  return {
    rpcUrl,
    rpcUser: RPC_USER,
    rpcPassword: apiKey,
    rpc,
    mineToScript: (script, n) =>
      serialize(async () => {
        live();
        checkCount(n);
        const addr = bcoin.Address.fromScript(bcoin.Script.fromRaw(Buffer.from(script)));
        if (addr === null) {
          throw new CustosError(
            'INVALID_VALUE',
            'bcoin mines only to scripts an address can spell (P2PKH, P2SH, segwit)',
          );
        }
        return mineTo(addr, n, false);
      }),
    mine: (n) =>
      serialize(async () => {
        live();
        checkCount(n);
        await mineTo(harnessAddress, n, true);
      }),
    fund: (script, value) =>
      serialize(async () => {
        live();
        return fund(script, value);
      }),
    activateSegwit: () =>
      serialize(async () => {
        live();
        await activateSegwit();
      }),
    height: () => node.chain.height,
    reorg: (depth) =>
      serialize(async () => {
        live();
        checkCount(depth);
        if (depth < 1 || depth >= node.chain.height) {
          throw new CustosError('INVALID_VALUE', 'reorg depth must be from 1 to below the chain height');
        }
        let fork = node.chain.tip;
        for (let i = 0; i < depth; i++) {
          const prev = await node.chain.getPrevious(fork);
          if (prev === null) throw new CustosError('INTERNAL', 'regtest node has no previous block');
          fork = prev;
        }
        // Empty blocks: the mempool's transactions may spend outputs of the blocks replaced.
        const mempool = node.miner.mempool;
        node.miner.mempool = null;
        const hashes: string[] = [];
        try {
          for (let i = 0, prev = fork; i <= depth; i++) {
            const block = await node.miner.mineBlock(prev, harnessAddress);
            const entry = await node.chain.add(block);
            if (entry === null) throw new CustosError('INTERNAL', 'regtest node refused a block it mined');
            hashes.push(block.rhash());
            prev = entry;
          }
        } finally {
          node.miner.mempool = mempool;
        }
        return hashes;
      }),
    onEvent: (listener) => {
      const onTx = (tx: Bcoin.TX) => listener({ kind: 'tx', txid: tx.txid(), raw: tx.toRaw() });
      const onConnect = (entry: Bcoin.ChainEntry, block: Bcoin.Block) =>
        listener({
          kind: 'connect',
          hash: entry.rhash(),
          height: entry.height,
          txs: block.txs.map((tx) => ({ txid: tx.txid(), raw: tx.toRaw() })),
        });
      const onDisconnect = (entry: Bcoin.ChainEntry) =>
        listener({ kind: 'disconnect', hash: entry.rhash(), height: entry.height });
      node.mempool.on('tx', onTx);
      node.chain.on('connect', onConnect);
      node.chain.on('disconnect', onDisconnect);
      return () => {
        node.mempool.removeListener('tx', onTx);
        node.chain.removeListener('connect', onConnect);
        node.chain.removeListener('disconnect', onDisconnect);
      };
    },
    close: () =>
      serialize(async () => {
        if (closed) return;
        closed = true;
        await node.close();
      }),
  };
}

/** bcoin reports BIP 9 deployments under `bip9_softforks`; Core (0.19+) under `softforks`. */
function segwitStatus(info: unknown): string | null {
  if (typeof info !== 'object' || info === null) return null;
  const forks = 'bip9_softforks' in info ? info.bip9_softforks : null;
  if (typeof forks !== 'object' || forks === null || !('segwit' in forks)) return null;
  const segwit = forks.segwit;
  if (typeof segwit !== 'object' || segwit === null || !('status' in segwit)) return null;
  return typeof segwit.status === 'string' ? segwit.status : null;
}

/**
 * Replaces bcoin's fire-and-forget sendrawtransaction with one that answers as Bitcoin Core's does
 * (src/rpc/mempool.cpp, BroadcastTransaction): the txid once the mempool holds the transaction
 * (also when it already did), else an error with Core's code and the reject reason.
 */
function installCoreSendRawTransaction(bcoin: typeof Bcoin, node: Bcoin.FullNode): void {
  const calls = node.rpc.calls;
  if (typeof calls.sendrawtransaction !== 'function') {
    throw new Error('BUG: bcoin has no sendrawtransaction handler to replace');
  }
  calls.sendrawtransaction = async (params: unknown[]) => {
    const hex = params[0];
    if (params.length < 1 || params.length > 2 || typeof hex !== 'string') {
      throw rpcError(RPC_MISC_ERROR, 'sendrawtransaction "hexstring" ( maxfeerate )');
    }
    let tx: Bcoin.TX;
    try {
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw new Error('not hex');
      tx = bcoin.TX.fromRaw(Buffer.from(hex, 'hex'));
    } catch {
      throw rpcError(RPC_DESERIALIZATION_ERROR, 'TX decode failed');
    }
    if (node.mempool.hasEntry(tx.hash('hex'))) return tx.txid();
    const evicted = await replaceByFee(node, tx);
    let missing: string[] | null;
    try {
      missing = await node.mempool.addTX(tx);
    } catch (err) {
      // Core replaces atomically: what was evicted for a transaction that is refused comes back.
      for (const e of evicted) await node.mempool.addTX(e.tx).catch(() => null);
      if (!isVerifyError(err)) throw err;
      // Sent twice at once (two coordinators broadcasting one transaction): the other call's
      // addTX won while this one waited for the mempool's lock. Core checks and adds under one
      // lock, so it answers the txid to both.
      if (err.reason === 'txn-already-in-mempool') return tx.txid();
      if (err.reason === 'txn-already-known') {
        throw rpcError(RPC_VERIFY_ALREADY_IN_CHAIN, 'Transaction outputs already in utxo set');
      }
      throw rpcError(RPC_VERIFY_REJECTED, err.reason);
    }
    if (missing !== null && missing.length > 0) {
      // Core keeps no orphans from RPC: it refuses the transaction.
      node.mempool.removeOrphan(tx.hash('hex'));
      throw rpcError(RPC_VERIFY_ERROR, 'bad-txns-inputs-missingorspent');
    }
    return tx.txid();
  };
}
