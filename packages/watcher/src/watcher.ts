/**
 * The watcher (issue 12): an independent process with its own Ed25519
 * identity (a governed member holding the `watcher` role, which may sign a
 * freeze and nothing else) and its own chain node, not the coordinator's.
 *
 * Each round it:
 * 1. brings governance up to the coordinator's head, verified from the
 *    pinned genesis with core's verifyGovernanceChain and applyGovernance
 *    (the coordinator is trusted for availability only), and watches every
 *    governed Bitcoin wallet's scripts (follow.ts);
 * 2. follows the audit log for what the signers signed: the txid of every
 *    transaction the coordinator built or queued for signing
 *    (`transaction.built`, `signing.queued`, fee-bump replacements included)
 *    counts once a signer's receipt for that intent is recorded
 *    (`signing.signed`, `bump.signed`, actor `signer:<id>`);
 * 3. reads its node's new blocks (a bounded number per round) and its
 *    mempool, and judges every transaction that spends a wallet coin: a
 *    txid the signers signed is a match (recorded); anything else, after
 *    reading the audit log to its head once more, is unexplained.
 *
 * With a ZMQ feed (zmq.ts: bitcoind's `rawtx` and `sequence` publishers)
 * it does not wait for the next round: each transaction the node announces
 * is judged as it arrives, a connected or disconnected block starts a round
 * at once, and a lost message (a gap in a topic's numbers), a reconnect or
 * the first message after subscribing starts a round that reads the node
 * over RPC again (new blocks and the whole mempool). The rounds on the
 * clock are then only a safety net, at a slow interval.
 *
 * Reorgs: a block the node disconnects (a `D` on the sequence topic, or over
 * RPC a block at the height last read whose hash is no longer the one read)
 * is taken back from the coin view (follow.ts): coins it spent are watched
 * again and those it created are not; blocks are then read from the fork.
 * A spend already judged stays judged, and a freeze signed stands.
 *
 * On an unexplained spend it signs a `freeze` (the reason names the txid),
 * keeps it in its record file before anything else (so signers can pull it
 * from {@link Watcher.freezes} even if the coordinator never applies it),
 * delivers it to the coordinator as a proposal (a freeze needs one admin or
 * watcher, so it applies at once: the coordinator audits it and fires the
 * `frozen` webhook), and logs a critical alert with the transaction and the
 * inputs it spent. The quorum unfreezes through the ordinary governance flow.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { type BitcoinRpc, type ParsedTx, parseBlock, parseTransaction } from '@custos/bitcoin';
import {
  applyGovernance,
  buildEntry,
  CustosError,
  type DeviceSigner,
  type Digest,
  type GovernanceState,
  governanceDigest,
  hasRole,
  type Millis,
  type SignedGovernanceEntry,
  signDigestWithDevice,
  signedGovernanceEntry,
  toHex,
  verifyGovernanceChain,
  WATCHER_ROLE,
} from '@custos/core';
import type { CoordinatorClient } from './coordinator.js';
import type { SafeFinding, SafeFollower } from './evm-follow.js';
import { CoinView, type Spend } from './follow.js';
import { type ReceiptsPage, signaturesNeeded, signersOf } from './receipts.js';
import { SequenceGaps, type ZmqItem, type ZmqSource } from './zmq.js';

export interface WatcherOptions {
  readonly coordinator: CoordinatorClient;
  readonly device: DeviceSigner;
  readonly pinnedGenesis: Digest;
  /** The watcher's own Bitcoin node (Core-compatible JSON-RPC subset of @custos/bitcoin); absent: no Bitcoin. */
  readonly rpc?: BitcoinRpc;
  /** The governed Safes' chains, each on the watcher's own node (evm-follow.ts). */
  readonly evm?: readonly SafeFollower[];
  /** The node's ZMQ publishers (zmq.ts), read between rounds; only with `rpc`. */
  readonly zmq?: ZmqSource;
  /** The record file (JSON): matches, unexplained spends, the freezes signed, the height read. */
  readonly recordPath: string;
  /** First block read when the record has none (the wallets' birth height); default 0. */
  readonly startHeight?: number;
  /** Address gap limit, default 20. */
  readonly gap?: number;
  readonly clock?: () => Millis;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface SpendRecord extends Spend {
  readonly at: Millis;
  readonly intent?: string;
  /** For a match: the signers whose verified receipts name this transaction. */
  readonly signers?: readonly string[];
  readonly freeze?: { readonly seq: number; readonly digest: Digest; readonly delivered: boolean };
  /** An EVM finding (evm-follow.ts): `txid` is its key, `inputs` is empty, `seenIn` its block. */
  readonly safe?: SafeFinding;
}

/** A Safe finding judged as a spend is: by its key, against the safeTxHashes the signers signed. */
type Judged = Spend & { readonly safe?: SafeFinding };

interface RecordFile {
  v: 1;
  height: number;
  matched: SpendRecord[];
  unexplained: SpendRecord[];
  freezes: SignedGovernanceEntry[];
}

/** ZMQ items held between rounds at most; past it they are dropped and the next round reads RPC. */
const MAX_INBOX = 10_000;
/** Blocks read per round at most, so a round stays short and the mempool is read often. */
const MAX_BLOCKS_PER_ROUND = 200;
const TX_EVENTS: ReadonlySet<string> = new Set([
  'transaction.built',
  'signing.queued',
  'transaction.broadcast',
  'bump.broadcast',
]);
const SIGNED_EVENTS: ReadonlySet<string> = new Set(['signing.signed', 'bump.signed']);
/** Reads of an intent's receipts before a spend it would explain is judged unexplained (about 3 s in all). */
const RECEIPT_TRIES = 5;
/** How often a round reads the coordinator's governance and audit log when nothing asks for it. */
const COORDINATOR_READ_MS = 1000;
const TXID = /^[0-9a-f]{64}$/;

export class Watcher {
  readonly #o: WatcherOptions;
  readonly #clock: () => Millis;
  readonly #coins: CoinView;
  readonly #record: RecordFile;
  #state: GovernanceState | null = null;
  #auditNext = 0;
  /** When step() last read governance and the audit log (COORDINATOR_READ_MS). */
  #coordinatorReadAt = Number.NEGATIVE_INFINITY;
  /** txid → the intents it was built or queued for. */
  readonly #txIntents = new Map<string, Set<string>>();
  /** Intents a signer's receipt says it signed. */
  readonly #signed = new Set<string>();
  readonly #mempoolRead = new Set<string>();
  #nextHeight: number;
  /** ZMQ items not yet handled, oldest first. */
  #inbox: ZmqItem[] = [];
  #wake: (() => void) | null = null;
  readonly #gaps = new SequenceGaps();
  /** Why the next round must read the node again (a gap, a reconnect, a block), or null. */
  #roundDue: string | null = null;

  constructor(opts: WatcherOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? Date.now;
    this.#coins = new CoinView(opts.gap);
    this.#record = existsSync(opts.recordPath)
      ? readRecord(opts.recordPath)
      : { v: 1, height: -1, matched: [], unexplained: [], freezes: [] };
    // Coins are rebuilt from the start height on every start: the record keeps judgements, not coins.
    this.#nextHeight = opts.startHeight ?? 0;
  }

  get governance(): GovernanceState | null {
    return this.#state;
  }

  /** The freezes this watcher signed, oldest first: what `GET /v1/freezes` serves to signers. */
  freezes(): readonly SignedGovernanceEntry[] {
    return this.#record.freezes;
  }

  matched(): readonly SpendRecord[] {
    return this.#record.matched;
  }

  unexplained(): readonly SpendRecord[] {
    return this.#record.unexplained;
  }

  /** One round: governance, audit, new blocks, mempool. Returns the spends judged in it. */
  async step(): Promise<SpendRecord[]> {
    // The coordinator is read at most every COORDINATOR_READ_MS here: a spend the last read does not
    // explain reads the audit log again before it is judged, and a freeze reads governance first.
    if (this.#clock() - this.#coordinatorReadAt >= COORDINATOR_READ_MS) {
      await this.#syncGovernance();
      await this.#readAudit();
      this.#coordinatorReadAt = this.#clock();
    }
    const judged: SpendRecord[] = [];
    if (this.#o.rpc !== undefined) await this.#stepBitcoin(this.#o.rpc, judged);
    for (const follower of this.#o.evm ?? []) {
      for (const safe of await follower.read(this.#state as GovernanceState)) {
        judged.push(await this.#judge({ txid: safe.key, inputs: [], seenIn: safe.block, safe }));
      }
    }
    if (this.#record.height !== this.#nextHeight - 1 || judged.length > 0) {
      this.#record.height = this.#nextHeight - 1;
      this.#save();
    }
    return judged;
  }

  async #stepBitcoin(rpc: BitcoinRpc, judged: SpendRecord[]): Promise<void> {
    const height = await rpc.getBlockCount();
    // The last block read must still be the node's at its height; else take it back, down to the fork.
    for (let tip = this.#coins.tip; tip !== null; tip = this.#coins.tip) {
      if (tip.height <= height && (await rpc.getBlockHash(tip.height)) === tip.hash) break;
      this.#undoBlock(tip.hash, 'rpc');
    }
    const last = Math.min(height, this.#nextHeight + MAX_BLOCKS_PER_ROUND - 1);
    for (let h = this.#nextHeight; h <= last; h++) {
      const block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(h)));
      const tip = this.#coins.tip;
      if (tip !== null && tip.height === h - 1 && block.prevHash !== tip.hash) {
        // Reorganized between the two calls: the next round takes the tip back.
        this.#roundDue = 'reorg';
        break;
      }
      for (const spend of this.#coins.readBlock(block, h)) judged.push(await this.#judge(spend));
      this.#nextHeight = h + 1;
    }
    if (this.#nextHeight > height) {
      const mempool = await rpc.getRawMempool();
      // Only what is in the mempool now is remembered: the set stays the mempool's size.
      const listed = new Set(mempool);
      for (const txid of this.#mempoolRead) if (!listed.has(txid)) this.#mempoolRead.delete(txid);
      const fresh: ParsedTx[] = [];
      for (const txid of mempool) {
        if (this.#mempoolRead.has(txid)) continue;
        try {
          fresh.push(parseTransaction(await rpc.getRawTransaction(txid)));
        } catch (err) {
          // Left the mempool between the two calls (mined or replaced; Core answers NOT_FOUND, bcoin a
          // generic code), or the node faltered: not marked read, so the next list or its block shows
          // it, and the transactions already fetched are still judged now.
          if (!(err instanceof CustosError)) throw err;
        }
      }
      // Marked read only once judged: a round that fails midway leaves the rest for the next one.
      for (const tx of parentsFirst(fresh)) {
        const spend = this.#coins.read(tx, 'mempool');
        if (spend !== null) judged.push(await this.#judge(spend));
        this.#mempoolRead.add(tx.txid);
      }
    }
  }

  /**
   * Rounds every `pollMs` until `signal` aborts; a failed round is logged and retried after a
   * pause. With a ZMQ feed, its items are handled as they arrive, between rounds, and a round
   * starts at once when one asks for it (a block, a gap, a reconnect).
   */
  async run(signal: AbortSignal, pollMs = 200): Promise<void> {
    const feed = this.#o.rpc === undefined ? undefined : this.#o.zmq;
    feed?.start((item) => {
      // A watcher stuck in a long round (or backing off) does not grow without bound: what it
      // drops is read over RPC by the round an overflow asks for, as after a gap.
      if (this.#inbox.length < MAX_INBOX) this.#inbox.push(item);
      else if (this.#roundDue !== 'overflow') {
        this.#roundDue = 'overflow';
        this.#log('watcher.zmq', { kind: 'gap', topic: 'inbox', missed: 1 });
      }
      this.#wake?.();
    });
    let backoff = pollMs;
    let nextRound = 0;
    try {
      while (!signal.aborted) {
        let failed = false;
        try {
          if (this.#inbox.length > 0) await this.#readZmq();
          if (this.#roundDue !== null || this.#clock() >= nextRound) {
            this.#roundDue = null;
            try {
              await this.step();
            } catch (err) {
              this.#roundDue ??= 'retry';
              throw err;
            }
            nextRound = this.#clock() + pollMs;
          }
          backoff = pollMs;
        } catch (err) {
          failed = true;
          this.#log('watcher.error', {
            code: err instanceof CustosError ? err.code : 'INTERNAL',
            message: err instanceof Error ? err.message : String(err),
          });
          backoff = Math.min(5000, backoff * 2);
        }
        if (!failed && (this.#inbox.length > 0 || this.#roundDue !== null)) continue;
        await this.#sleep(failed ? backoff : Math.max(0, nextRound - this.#clock()), signal, !failed);
      }
    } finally {
      await feed?.close();
    }
  }

  /** Waits `ms`, until `signal` aborts, or (when `wakeable`) until the ZMQ feed hands over an item. */
  #sleep(ms: number, signal: AbortSignal, wakeable: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      if (wakeable) this.#wake = done;
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    }).then(() => {
      this.#wake = null;
    });
  }

  /**
   * Handles the ZMQ items that arrived, in order: a transaction is judged at once (as a mempool
   * transaction: a block's are read again by the round it starts); a block connected asks for a
   * round; a block disconnected is taken back when it is the last one read (else the round finds
   * the fork over RPC); the first message of a topic, a gap in its numbers, a message that does
   * not parse, a disconnect or reconnect ask for a round that reads the node again.
   */
  async #readZmq(): Promise<void> {
    const items = this.#inbox;
    this.#inbox = [];
    const txs: ParsedTx[] = [];
    for (const item of items) {
      if (item.kind === 'connected' || item.kind === 'disconnected') {
        for (const topic of item.topics) this.#gaps.reset(topic);
        this.#log('watcher.zmq', { kind: item.kind, endpoint: item.endpoint, topics: item.topics });
        this.#roundDue = item.kind;
        continue;
      }
      if (item.kind === 'invalid') {
        this.#log('watcher.zmq', { kind: 'invalid', code: item.code, message: item.message });
        this.#roundDue = 'invalid';
        continue;
      }
      const m = item.message;
      const check = this.#gaps.check(m.topic, m.seq);
      if (check.kind === 'gap') {
        this.#log('watcher.zmq', { kind: 'gap', topic: m.topic, seq: m.seq, missed: check.missed });
        this.#roundDue = 'gap';
      } else if (check.kind === 'first') {
        // Subscribed: what the node sent before is read over RPC.
        this.#roundDue ??= 'first';
      }
      if (m.topic === 'rawtx') {
        try {
          txs.push(parseTransaction(m.raw));
        } catch (err) {
          this.#log('watcher.zmq', {
            kind: 'invalid',
            code: err instanceof CustosError ? err.code : 'INVALID_VALUE',
            message: 'a rawtx notification that is not a transaction',
          });
          this.#roundDue = 'invalid';
        }
      } else if (m.label === 'C') {
        this.#roundDue ??= 'block';
      } else if (m.label === 'D') {
        if (this.#coins.tip?.hash === m.hash) this.#undoBlock(m.hash, 'zmq');
        this.#roundDue ??= 'block';
      }
    }
    if (txs.length === 0) return;
    try {
      // New wallets first (read at most every COORDINATOR_READ_MS; the RPC round reads the mempool
      // again, so a payment to a wallet added meanwhile is found there).
      if (this.#state === null || this.#clock() - this.#coordinatorReadAt >= COORDINATOR_READ_MS) {
        await this.#syncGovernance();
      }
      for (const tx of txs) {
        const spend = this.#coins.read(tx, 'mempool');
        if (spend !== null) await this.#judge(spend);
      }
    } catch (err) {
      // Not lost: the RPC round reads the mempool again (only what it listed itself is skipped).
      this.#roundDue ??= 'retry';
      throw err;
    }
  }

  #undoBlock(hash: string, source: 'zmq' | 'rpc'): void {
    const undone = this.#coins.undoBlock(hash);
    if (undone === null) return;
    this.#nextHeight = undone.height;
    this.#log('watcher.reorg', { source, ...undone, coins: this.#coins.coinCount });
  }

  async #syncGovernance(): Promise<void> {
    const now = this.#clock();
    if (this.#state === null) {
      const entries = await this.#o.coordinator.governanceEntries(-1);
      const chain = verifyGovernanceChain(
        this.#o.pinnedGenesis,
        entries.map((signed) => ({ signed, seenAt: now })),
      );
      if (!chain.ok) throw new CustosError(chain.code, `governance does not verify: ${chain.message}`);
      this.#state = chain.value;
    }
    for (;;) {
      const state: GovernanceState = this.#state;
      const entries = await this.#o.coordinator.governanceEntries(state.seq);
      if (entries.length === 0) break;
      let next = state;
      for (const signed of entries) {
        if (signed.entry.seq <= next.seq) continue;
        if (signed.entry.prev !== next.head) {
          throw new CustosError(
            'GOVERNANCE_CHAIN_BROKEN',
            `governance entry ${signed.entry.seq} does not link`,
          );
        }
        const applied = applyGovernance(next, signed, now);
        if (!applied.ok)
          throw new CustosError(applied.code, `governance entry ${signed.entry.seq}: ${applied.message}`);
        next = applied.value;
      }
      this.#state = next;
      if (next.seq === state.seq) break;
    }
    this.#coins.setWallets(this.#state);
  }

  async #readAudit(): Promise<void> {
    for (;;) {
      const entries = await this.#o.coordinator.audit(this.#auditNext);
      for (const e of entries) {
        if (e.seq < this.#auditNext) continue;
        this.#auditNext = e.seq + 1;
        if (TX_EVENTS.has(e.event) && TXID.test(e.digest)) {
          let set = this.#txIntents.get(e.digest);
          if (set === undefined) {
            set = new Set();
            this.#txIntents.set(e.digest, set);
          }
          set.add(e.subject);
        } else if (SIGNED_EVENTS.has(e.event) && e.actor.startsWith('signer:')) {
          this.#signed.add(e.subject);
        }
      }
      if (entries.length < 1000) return;
    }
  }

  /**
   * The intent a transaction was signed for, proven by the signers' own receipts (receipts.ts):
   * the audit log only says which intents to ask about. Null when no candidate intent has the
   * wallet's threshold of verified receipts naming this txid (or safeTxHash). Receipts the
   * coordinator will not serve, after a few tries, explain nothing: a hostile coordinator that
   * withholds them gets a freeze, not a pass.
   */
  async #explained(spend: Judged): Promise<{ intent: string; signers: readonly string[] } | null> {
    const state = this.#state;
    if (state === null) return null;
    const wallets =
      spend.safe === undefined ? [...new Set(spend.inputs.map((i) => i.wallet))] : [spend.safe.wallet];
    const needed = signaturesNeeded(state, wallets);
    for (const intent of this.#txIntents.get(spend.txid) ?? []) {
      if (!this.#signed.has(intent)) continue;
      let page: ReceiptsPage | null = null;
      for (let attempt = 0; page === null && attempt < RECEIPT_TRIES; attempt++) {
        try {
          page = await this.#o.coordinator.receipts(intent);
        } catch (err) {
          this.#log('watcher.error', {
            code: err instanceof CustosError ? err.code : 'INTERNAL',
            message: `receipts of intent ${intent}: ${err instanceof Error ? err.message : String(err)}`,
          });
          if (attempt + 1 < RECEIPT_TRIES) await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
        }
      }
      if (page === null) continue;
      const { signers, rejected } = signersOf(state, page, intent, spend.txid);
      if (signers.length >= needed) return { intent, signers };
      this.#log('watcher.receipts_short', { txid: spend.txid, intent, signers, needed, rejected });
    }
    return null;
  }

  async #judge(spend: Judged): Promise<SpendRecord> {
    // Blocks are read again from the start height after a restart: a spend judged before stays judged.
    const known = [...this.#record.matched, ...this.#record.unexplained].find((r) => r.txid === spend.txid);
    if (known !== undefined) return known;
    let explained = await this.#explained(spend);
    if (explained === null) {
      // The signers' receipts may have been recorded since this round read the log.
      await this.#readAudit();
      explained = await this.#explained(spend);
    }
    if (explained !== null) {
      const { intent, signers } = explained;
      const record: SpendRecord = { ...spend, at: this.#clock(), intent, signers };
      this.#record.matched.push(record);
      this.#log('watcher.matched', {
        txid: spend.txid,
        intent,
        signers,
        seenIn: spend.seenIn,
        ...(spend.safe === undefined ? {} : { safe: spend.safe }),
      });
      return record;
    }
    return this.#unexplained(spend);
  }

  async #unexplained(spend: Judged): Promise<SpendRecord> {
    const at = this.#clock();
    const safe = spend.safe;
    this.#log('watcher.alert', {
      severity: 'critical',
      code:
        safe === undefined
          ? 'UNEXPLAINED_SPEND'
          : safe.kind === 'state'
            ? 'SAFE_STATE_MISMATCH'
            : 'UNEXPLAINED_SAFE_EXECUTION',
      txid: spend.txid,
      seenIn: spend.seenIn,
      inputs: spend.inputs,
      ...(safe === undefined ? {} : { safe }),
    });
    let freeze: SpendRecord['freeze'];
    const wallets = [...new Set(spend.inputs.map((c) => c.wallet))].join(', ');
    const what =
      safe === undefined
        ? `unexplained spend ${spend.txid} of wallet ${wallets}`
        : safe.kind === 'state'
          ? `Safe ${safe.wallet} on ${safe.chain}: ${safe.field} is not the governed one`
          : `unexplained ${safe.kind} ${safe.key} of Safe ${safe.wallet} on ${safe.chain}`;
    const reason = `watcher ${this.#o.device.member}: ${what}`.slice(0, 512);
    // A freeze taken by another entry at that seq (409): read governance again and sign at the new head.
    for (let attempt = 0; attempt < 3 && freeze === undefined; attempt++) {
      await this.#syncGovernance();
      const state = this.#state as GovernanceState;
      if (!hasRole(state, this.#o.device.member, WATCHER_ROLE, this.#clock())) {
        this.#log('watcher.error', {
          code: 'NOT_AUTHORIZED',
          message: 'this key does not hold the watcher role',
        });
      }
      const entry = buildEntry(state, 'freeze', { reason }, at);
      const digest = governanceDigest(entry);
      const signed: SignedGovernanceEntry = {
        entry,
        signatures: [
          {
            member: this.#o.device.member,
            device: this.#o.device.device,
            signature: await signDigestWithDevice(this.#o.device, digest),
          },
        ],
      };
      // Kept before delivery: signers pull it from here whatever the coordinator does.
      this.#record.freezes.push(signed);
      this.#save();
      try {
        await this.#o.coordinator.propose(signed);
        freeze = { seq: entry.seq, digest, delivered: true };
        this.#log('watcher.freeze', { txid: spend.txid, seq: entry.seq, digest, delivered: true });
      } catch (err) {
        const status = err instanceof CustosError ? err.details.status : undefined;
        this.#log('watcher.freeze', {
          txid: spend.txid,
          seq: entry.seq,
          digest,
          delivered: false,
          message: err instanceof Error ? err.message : String(err),
        });
        if (status !== 409) freeze = { seq: entry.seq, digest, delivered: false };
      }
    }
    const record: SpendRecord = { ...spend, at, ...(freeze === undefined ? {} : { freeze }) };
    this.#record.unexplained.push(record);
    this.#save();
    return record;
  }

  #save(): void {
    const tmp = `${this.#o.recordPath}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.#record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.#o.recordPath);
  }

  #log(event: string, fields: Record<string, unknown>): void {
    this.#o.log?.(event, fields);
  }
}

/**
 * The record file as this watcher wrote it. One that does not parse stops the start with
 * INVALID_VALUE: starting over would forget the freezes signers pull, so an operator decides.
 */
function readRecord(path: string): RecordFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new CustosError(
      'INVALID_VALUE',
      `the watcher record ${path} is not JSON; move it aside to start over`,
    );
  }
  const r = parsed as Partial<RecordFile> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    r.v !== 1 ||
    !Number.isSafeInteger(r.height) ||
    !Array.isArray(r.matched) ||
    !Array.isArray(r.unexplained) ||
    !Array.isArray(r.freezes)
  ) {
    throw new CustosError('INVALID_VALUE', `the watcher record ${path} is not a version 1 record`);
  }
  return {
    v: 1,
    height: r.height as number,
    matched: r.matched,
    unexplained: r.unexplained,
    freezes: r.freezes.map((f) => signedGovernanceEntry.parse(f)),
  };
}

/**
 * Mempool transactions with each one's parents in the list before it: the node lists its mempool
 * in no such order, and a spend read before the payment that made its coin would be missed until
 * mined. Kahn's order over the list's own txids; a cycle cannot occur among valid transactions,
 * and whatever is left (none) keeps the node's order.
 */
export function parentsFirst(txs: readonly ParsedTx[]): ParsedTx[] {
  const byId = new Map(txs.map((t) => [t.txid, t]));
  const children = new Map<string, string[]>();
  const waiting = new Map<string, number>();
  for (const t of txs) {
    const parents = new Set<string>();
    for (let i = 0; i < t.tx.inputsLength; i++) {
      const input = t.tx.getInput(i);
      if (input.txid === undefined) continue;
      const parent = toHex(input.txid);
      if (parent !== t.txid && byId.has(parent)) parents.add(parent);
    }
    waiting.set(t.txid, parents.size);
    for (const p of parents) children.set(p, [...(children.get(p) ?? []), t.txid]);
  }
  const out: ParsedTx[] = [];
  const ready = txs.filter((t) => waiting.get(t.txid) === 0).map((t) => t.txid);
  for (let i = 0; i < ready.length; i++) {
    const id = ready[i] as string;
    out.push(byId.get(id) as ParsedTx);
    for (const c of children.get(id) ?? []) {
      const n = (waiting.get(c) as number) - 1;
      waiting.set(c, n);
      if (n === 0) ready.push(c);
    }
  }
  if (out.length < txs.length) for (const t of txs) if ((waiting.get(t.txid) ?? 0) > 0) out.push(t);
  return out;
}
