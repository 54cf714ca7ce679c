/**
 * The EVM half of the watcher (issue 12): follows the governed Safes of one
 * chain on the watcher's own node, block by block, and reports what
 * happened to them as findings the watcher judges (watcher.ts).
 *
 * Per round, for the new blocks (a bounded number):
 * - the Safes' logs (Safe 1.4.1 ABI): every `ExecutionSuccess` and
 *   `ExecutionFailure` (a failed execution still proves a threshold of owner
 *   signatures and spends the nonce) and every `ApproveHash` is a finding
 *   keyed by its safeTxHash, which the watcher matches against the
 *   safeTxHashes the signers signed (the audit log's digest for a Safe
 *   intent); every `ExecutionFromModuleSuccess`/`Failure` is a finding no
 *   receipt can explain (a module moves funds with no owner signature);
 * - the Safes' state (singleton in slot 0 and its code hash, owners,
 *   threshold, modules, guard, fallback handler), read with readSafeState
 *   and compared with governance by checkSafeState: any difference is a
 *   finding. The state is read whenever blocks were added, not only when an
 *   `AddedOwner`-like event says so: Bybit's singleton swap wrote slot 0
 *   through a delegatecall and emitted nothing.
 *
 * Then, once caught up, the node's pending block (`eth_getBlockByNumber
 * "pending"` with its transactions, served by geth, Erigon, Hardhat): an
 * `execTransaction` call to a governed Safe is judged before it is mined by
 * its safeTxHash, computed from the calldata at the Safe's nonce (or the
 * next ones, when several wait), and only when at least the governed
 * threshold of its signatures recover to governed owners: calldata anyone
 * can send, with signatures that would not execute, must not freeze the
 * organization. Its later `ExecutionSuccess` has the same key, so it is
 * judged once. A node that does not serve the pending block (many hosted
 * ones) leaves the blocks, as does an execution signed by contract
 * signatures or pre-approved hashes.
 */
import { createHash } from 'node:crypto';
import {
  type EvmSafeWallet,
  evmChainId,
  type GovernanceState,
  isSafeWallet,
  type Schema,
  schema,
} from '@custos/core';
import {
  checkSafeState,
  decodeExecTransaction,
  type ExecTransactionCall,
  evmNodes,
  recoverSafeSigner,
  SAFE_ABI,
  safeTxHash,
} from '@custos/evm';
import { readSafeState, type SafeStateRead } from '@custos/evm/state';
import { type Address, getAddress, type Hex, type PublicClient, parseAbi } from 'viem';

/** The Safe 1.4.1 events the watcher reads. */
export const SAFE_EVENTS = parseAbi([
  'event ExecutionSuccess(bytes32 indexed txHash, uint256 payment)',
  'event ExecutionFailure(bytes32 indexed txHash, uint256 payment)',
  'event ApproveHash(bytes32 indexed approvedHash, address indexed owner)',
  'event ExecutionFromModuleSuccess(address indexed module)',
  'event ExecutionFromModuleFailure(address indexed module)',
  'event AddedOwner(address indexed owner)',
  'event RemovedOwner(address indexed owner)',
  'event ChangedThreshold(uint256 threshold)',
  'event EnabledModule(address indexed module)',
  'event DisabledModule(address indexed module)',
  'event ChangedGuard(address indexed guard)',
  'event ChangedFallbackHandler(address indexed handler)',
]);

/** Blocks read per round at most, so a round stays short. */
const MAX_BLOCKS_PER_ROUND = 500n;

export type SafeFindingKind = 'execution' | 'approve-hash' | 'module-execution' | 'state';

/** Something that happened to a governed Safe, for the watcher to match or freeze on. */
export interface SafeFinding {
  readonly kind: SafeFindingKind;
  /** The governed chain, `eip155:<id>`. */
  readonly chain: string;
  readonly wallet: string;
  readonly safe: Address;
  readonly block: number;
  /**
   * What the watcher matches and remembers the finding by: for an execution
   * or an approved hash the safeTxHash (64 lower-case hex digits, no 0x, as
   * the audit log's digest); for a module execution the Ethereum
   * transaction hash; for a state difference `state:<wallet>:<field>:<hash of
   * what the chain shows>`, so one difference is reported once.
   */
  readonly key: string;
  /** The Ethereum transaction that did it, when a log names it. */
  readonly transaction?: Hex;
  readonly event?: string;
  readonly module?: Address;
  /** For `state`: the first field that differs from governance, and why. */
  readonly field?: string;
  readonly message?: string;
  readonly success?: boolean;
  /** Seen in the node's pending block, before it was mined (`block` is the pending block's number). */
  readonly pending?: boolean;
}

export interface SafeFollowerOptions {
  readonly chainId: number;
  /** A viem public client on the watcher's own node (evmClient of @custos/evm/state). */
  readonly client: PublicClient;
  /** First block read (the Safes' deployment); default 0. */
  readonly startBlock?: number;
}

const hex64 = (h: Hex): string => h.slice(2).toLowerCase();

/** The governed Safes of a chain, by lower-case address. */
export function governedSafes(state: GovernanceState, chain: string): Map<string, EvmSafeWallet> {
  const out = new Map<string, EvmSafeWallet>();
  for (const w of state.wallets.values())
    if (isSafeWallet(w) && w.chain === chain) out.set(w.address.toLowerCase(), w);
  return out;
}

/** Follows one chain's governed Safes; {@link read} returns the new findings, oldest first. */
export class SafeFollower {
  readonly chain: string;
  readonly #o: SafeFollowerOptions;
  #next: bigint;
  /** Per Safe, the state difference last reported (its key), so a persisting one is reported once. */
  readonly #drift = new Map<string, string>();
  /** Pending transactions already judged, only those still pending: the set stays the pool's size. */
  #pendingSeen = new Set<string>();
  #pendingServed = true;

  constructor(opts: SafeFollowerOptions) {
    this.#o = opts;
    this.chain = `eip155:${opts.chainId}`;
    this.#next = BigInt(opts.startBlock ?? 0);
  }

  /** The next block this follower reads. */
  get nextBlock(): number {
    return Number(this.#next);
  }

  async read(state: GovernanceState): Promise<SafeFinding[]> {
    const safes = governedSafes(state, this.chain);
    const head = await this.#o.client.getBlockNumber();
    if (safes.size === 0) {
      if (head >= this.#next) this.#next = head + 1n;
      return [];
    }
    const findings = head < this.#next ? [] : await this.#readBlocks(safes, head);
    if (this.#next > head && this.#pendingServed) findings.push(...(await this.#readPending(safes)));
    return findings;
  }

  async #readPending(safes: Map<string, EvmSafeWallet>): Promise<SafeFinding[]> {
    const block = await this.#o.client
      .getBlock({ blockTag: 'pending', includeTransactions: true })
      .catch(() => null);
    if (block === null) {
      // Not served by this node: blocks only, from now on.
      this.#pendingServed = false;
      return [];
    }
    const findings: SafeFinding[] = [];
    const seen = new Set<string>();
    const calls = new Map<string, { hash: Hex; call: ExecTransactionCall }[]>();
    for (const tx of block.transactions) {
      if (typeof tx === 'string' || tx.to === null || !safes.has(tx.to.toLowerCase())) continue;
      seen.add(tx.hash);
      if (this.#pendingSeen.has(tx.hash)) continue;
      const decoded = decodeExecTransaction(tx.input);
      if (!decoded.ok) continue;
      const list = calls.get(tx.to.toLowerCase()) ?? [];
      list.push({ hash: tx.hash, call: decoded.value });
      calls.set(tx.to.toLowerCase(), list);
    }
    this.#pendingSeen = new Set([...this.#pendingSeen].filter((h) => seen.has(h)));
    for (const [address, list] of calls) {
      const w = safes.get(address) as EvmSafeWallet;
      const nonce = await this.#o.client.readContract({
        address: w.address as Address,
        abi: SAFE_ABI,
        functionName: 'nonce',
      });
      for (const { hash, call } of list) {
        this.#pendingSeen.add(hash);
        const safeHash = signedByThreshold(w, this.#o.chainId, call, nonce, list.length);
        if (safeHash === null) continue;
        findings.push({
          kind: 'execution',
          chain: this.chain,
          wallet: w.id,
          safe: getAddress(w.address),
          block: Number(block.number ?? this.#next),
          key: hex64(safeHash),
          transaction: hash,
          event: 'execTransaction',
          pending: true,
        });
      }
    }
    return findings;
  }

  async #readBlocks(safes: Map<string, EvmSafeWallet>, head: bigint): Promise<SafeFinding[]> {
    const to = head - this.#next + 1n > MAX_BLOCKS_PER_ROUND ? this.#next + MAX_BLOCKS_PER_ROUND - 1n : head;
    const logs = await this.#o.client.getLogs({
      address: [...safes.values()].map((w) => w.address as Address),
      events: SAFE_EVENTS,
      fromBlock: this.#next,
      toBlock: to,
    });
    const findings: SafeFinding[] = [];
    /** Per Safe, the last transaction in these blocks that changed its state by an event. */
    const changedBy = new Map<string, Hex>();
    for (const log of logs) {
      const w = safes.get(log.address.toLowerCase());
      if (w === undefined || log.blockNumber === null || log.transactionHash === null) continue;
      const base = {
        chain: this.chain,
        wallet: w.id,
        safe: getAddress(w.address),
        block: Number(log.blockNumber),
        transaction: log.transactionHash,
        event: log.eventName,
      };
      switch (log.eventName) {
        case 'ExecutionSuccess':
        case 'ExecutionFailure':
          findings.push({
            ...base,
            kind: 'execution',
            key: hex64(log.args.txHash as Hex),
            success: log.eventName === 'ExecutionSuccess',
          });
          break;
        case 'ApproveHash':
          findings.push({ ...base, kind: 'approve-hash', key: hex64(log.args.approvedHash as Hex) });
          break;
        case 'ExecutionFromModuleSuccess':
        case 'ExecutionFromModuleFailure':
          findings.push({
            ...base,
            kind: 'module-execution',
            key: hex64(log.transactionHash),
            module: getAddress(log.args.module as Address),
            success: log.eventName === 'ExecutionFromModuleSuccess',
          });
          break;
        default:
          changedBy.set(w.id, log.transactionHash);
      }
    }
    for (const w of safes.values()) {
      const finding = await this.#checkState(w, Number(to), changedBy.get(w.id));
      if (finding !== null) findings.push(finding);
    }
    this.#next = to + 1n;
    return findings;
  }

  /** The Safe's state against governance; a new difference is a finding, the same one again is not. */
  async #checkState(
    w: EvmSafeWallet,
    block: number,
    transaction: Hex | undefined,
  ): Promise<SafeFinding | null> {
    let observed: SafeStateRead;
    try {
      observed = await readSafeState(this.#o.client, w.address as Address);
    } catch (err) {
      // A singleton swapped for an address whose answers do not decode (no code: empty data) fails the
      // read; slot 0 read raw tells that apart from a node that is away (then the round fails and retries).
      const slot0 = await this.#o.client.getStorageAt({ address: w.address as Address, slot: '0x0' });
      const singleton = `0x${(slot0 ?? '0x').slice(2).padStart(64, '0').slice(24)}`;
      if (singleton.toLowerCase() === w.singleton.toLowerCase()) throw err;
      return this.#report(w, `state:${w.id}:singleton:${singleton.toLowerCase()}`, {
        block,
        field: 'singleton',
        message: `the Safe's singleton on chain (${singleton}) is not the governed one`,
        transaction,
      });
    }
    const checked = checkSafeState(observed, {
      singleton: w.singleton as Address,
      singletonCodeHash: w.singletonCodeHash as Hex,
      owners: w.owners.map((o) => o.address as Address),
      threshold: BigInt(w.threshold),
      modules: (w.modules ?? []) as Address[],
      guard: (w.guard ?? '0x0000000000000000000000000000000000000000') as Address,
      fallbackHandler: w.fallbackHandler as Address,
    });
    if (checked.ok) {
      this.#drift.delete(w.id);
      return null;
    }
    const field = String(checked.details?.field ?? 'state');
    // What the chain shows, without the nonce and the block: a difference that persists while the
    // Safe executes is the same difference.
    const shown = {
      singleton: observed.singleton,
      singletonCodeHash: observed.singletonCodeHash,
      owners: observed.owners === null ? null : [...observed.owners].map((o) => o.toLowerCase()).sort(),
      threshold: observed.threshold === null ? null : String(observed.threshold),
      modules: observed.modules === null ? null : [...observed.modules].map((m) => m.toLowerCase()).sort(),
      guard: observed.guard,
      fallbackHandler: observed.fallbackHandler,
    };
    const seen = createHash('sha256').update(JSON.stringify(shown)).digest('hex').slice(0, 16);
    return this.#report(w, `state:${w.id}:${field}:${seen}`, {
      block: Number(observed.blockNumber > BigInt(block) ? observed.blockNumber : BigInt(block)),
      field,
      message: checked.message,
      transaction,
    });
  }

  #report(
    w: EvmSafeWallet,
    key: string,
    d: { block: number; field: string; message: string; transaction: Hex | undefined },
  ): SafeFinding | null {
    if (this.#drift.get(w.id) === key) return null;
    this.#drift.set(w.id, key);
    return {
      kind: 'state',
      chain: this.chain,
      wallet: w.id,
      safe: getAddress(w.address),
      block: d.block,
      key,
      field: d.field,
      message: d.message,
      ...(d.transaction === undefined ? {} : { transaction: d.transaction }),
    };
  }
}

/**
 * The safeTxHash of a pending execTransaction at the Safe's nonce or one of
 * the next `window - 1` (several may wait in nonce order), the first at which
 * at least the governed threshold of its 65-byte ECDSA signatures recover to
 * distinct governed owners; null when none does (it would not execute).
 */
export function signedByThreshold(
  w: EvmSafeWallet,
  chainId: number,
  call: ExecTransactionCall,
  nonce: bigint,
  window: number,
): Hex | null {
  const owners = new Set(w.owners.map((o) => o.address.toLowerCase()));
  const sigs = call.signatures.slice(2);
  for (let k = 0n; k < BigInt(Math.max(1, window)); k++) {
    const hash = safeTxHash(w.address as Address, chainId, { ...call.tx, nonce: nonce + k });
    const signers = new Set<string>();
    for (let i = 0; i + 130 <= sigs.length; i += 130) {
      const recovered = recoverSafeSigner(hash, `0x${sigs.slice(i, i + 130)}`);
      if (recovered.ok && owners.has(recovered.value.toLowerCase()))
        signers.add(recovered.value.toLowerCase());
    }
    if (signers.size >= w.threshold) return hash;
  }
  return null;
}

/** The chain id of an `eip155:<id>` config key, or undefined. */
export function chainIdOf(key: string): number | undefined {
  return evmChainId(`eip155:${key}`);
}

export interface EvmWatchNode {
  readonly rpcUrl: string;
  readonly startBlock?: number;
}

const evmWatchNode = schema.object(
  { rpcUrl: schema.string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ }) },
  { startBlock: schema.int({ min: 0, max: Number.MAX_SAFE_INTEGER }) },
);

/**
 * The watcher config's `evm`: EVM chain id (decimal) to the watcher's own
 * node, `{rpcUrl, startBlock?}`, read as the signer's config reads its nodes
 * (@custos/evm evmNodes); at most 16 chains.
 */
export const evmWatchNodes: Schema<Record<string, EvmWatchNode>> = evmNodes(evmWatchNode);
