/**
 * The signer: where the DMM Bitcoin attack dies (docs/architecture.md flow step 4).
 *
 * It holds one key of an m-of-n wallet and signs nothing it has not checked
 * itself against the exact bytes it signs: the governance chain from the
 * pinned genesis, every signature, membership and devices at signing time,
 * the policy on its own clock with its own ledger, the freeze state, and the
 * PSBT (inputs are the wallet's, amounts proven, outputs exactly the intent
 * plus change, fee under the caps, SIGHASH_ALL). The coordinator that hands it
 * jobs is trusted for availability only.
 *
 * Order of work for one job:
 * 1. decode the job strictly;
 * 2. bring governance up to the job's head (fetched entries are verified and
 *    stored with this signer's first-seen time). The head digest in a job is
 *    unsigned: a wrong one is refused (GOVERNANCE_HEAD_MISMATCH, critical
 *    alert), never a reason to freeze, or any coordinator could brick the
 *    signer. Only proof freezes it (THREATS 10): a second entry for a seq it
 *    applied, or a successor whose `prev` is not its entry, quorum-signed by
 *    the admins of its own verified state before that seq. Both entries are
 *    kept as evidence and named in the alert; a quorum-signed `unfreeze`
 *    applied afterwards clears that freeze;
 * 3. in one exclusive transaction: load what the decision needs from this
 *    signer's store, decide with the pure decideJob of decision.ts (frozen?
 *    already signed this intent? policy with the ledger's sums, PSBT check,
 *    sign), write the ledger row and the decision, commit; only then does the
 *    signature leave (THREATS 32). A job carrying a fee bump (issue 13) is
 *    decided from this signer's own ledger (bump-decision.ts) and its
 *    replacement recorded beside the original's row, never as a second entry.
 *
 * An EVM Safe job (issue 9) takes the same steps 1-2; before step 3 the
 * signer reads the Safe's state from its own node (never one the coordinator
 * names), then decides with the pure decideEvmJob of evm-decision.ts and
 * records the ledger row and the Safe nonce in the same transaction. A Safe
 * found changed on chain (SAFE_STATE_MISMATCH) freezes this signer as an
 * equivocation does, until a quorum-signed unfreeze.
 */

import type { SignerKey } from '@custos/bitcoin/sign';
import {
  ADMIN_ROLE,
  applyGovernance,
  CustosError,
  checkpointRequest,
  type Digest,
  type ErrorCode,
  type EvidenceEntry,
  effectiveQuorum,
  evmChainId,
  fromHex,
  type GovernanceHead,
  type GovernanceState,
  governanceDigest,
  governanceEntries,
  hasRole,
  type Intent,
  intentDigest,
  isSafeWallet,
  type Millis,
  type Receipt,
  receiptDigest,
  type SignedCheckpoint,
  type SignedGovernanceEntry,
  type SignerAlert,
  type SignerJob,
  type SignerResult,
  signBytes,
  signCheckpoint,
  signedGovernanceEntry,
  signerJob,
  verifyGovernanceChain,
} from '@custos/core';
import { type Address, evmAddressOf } from '@custos/evm';
import { evmClient, readSafeState } from '@custos/evm/state';
import { decideJob } from './decision.js';
import { type Attestation, decideEvmJob, EVM_CRITICAL_CODES } from './evm-decision.js';
import { SafeNonceLedger } from './safe-ledger.js';
import type { SignerStore } from './store.js';

/** Where the signer gets governance entries it has not seen yet. */
export interface GovernanceSource {
  /** Entries with seq in (afterSeq, uptoSeq], in order, as parsed JSON (checked here). */
  governanceEntries(afterSeq: number, uptoSeq: number): Promise<unknown>;
}

export interface SignerOptions {
  readonly id: string;
  readonly identitySecret: Uint8Array;
  readonly key: SignerKey;
  readonly pinnedGenesis: Digest;
  /** Chains this signer serves, e.g. ['bitcoin:regtest']. */
  readonly chains: readonly string[];
  readonly store: SignerStore;
  readonly clock?: () => Millis;
  /** The Safe owner key and the trusted nodes; without it every EVM job is refused (UNAVAILABLE). */
  readonly evm?: SignerEvmOptions;
}

export interface SignerEvmOptions {
  /** The secp256k1 Safe owner key from the keystore; null for a keystore made before EVM support. */
  readonly secret: Uint8Array | null;
  /**
   * This signer's own JSON-RPC node per EVM chain id (the configuration's
   * `evm`), read for the state attestation. A chain without one: EVM jobs
   * for it are refused (UNAVAILABLE).
   */
  readonly rpc: ReadonlyMap<number, string>;
  /**
   * 'off' skips the state attestation (the nonce then comes from the ledger
   * alone). For benchmarks of the decision itself; the configuration file
   * cannot set it.
   */
  readonly attestation?: 'on' | 'off';
}

/** Codes that mean someone tampered with something: the coordinator relays them as critical alerts. */
const CRITICAL: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'INTENT_SIGNATURE_INVALID',
  'APPROVAL_SIGNATURE_INVALID',
  'GOVERNANCE_SIGNATURE_INVALID',
  'GOVERNANCE_EQUIVOCATION',
  'GOVERNANCE_HEAD_MISMATCH',
  'GOVERNANCE_CHAIN_BROKEN',
  'WRONG_ORG',
  'DUPLICATE_INTENT',
  'FOREIGN_INPUT',
  'UNEXPECTED_OUTPUT',
  'INPUT_AMOUNT_UNPROVEN',
  'SIGHASH_NOT_ALL',
  'WALLET_ALIAS',
  'CHANGE_BEYOND_GAP',
  'NOT_A_REPLACEMENT',
  // An internal transfer's claim that is false (issue 13): signed by the requester, yet the
  // coordinator refuses it at the door, so reaching a signer means it was let through.
  'DESTINATION_NOT_WALLET',
]);

/** A refusal of a job, returned (never thrown) up to {@link Signer.handle}, which records and signs it. */
class Refused {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
    /** A critical alert even for a code that is not always one; evidence of an equivocation. */
    readonly extra: { readonly critical?: boolean; readonly evidence?: EvidenceEntry[] } = {},
  ) {}
}

const EVM_CRITICAL: ReadonlySet<ErrorCode> = new Set<ErrorCode>(EVM_CRITICAL_CODES);

export class Signer {
  private state: GovernanceState;
  private readonly clock: () => Millis;
  private readonly safeNonces: SafeNonceLedger;
  private readonly evmAddress: Address | null;

  private constructor(
    private readonly opts: SignerOptions,
    state: GovernanceState,
  ) {
    this.state = state;
    this.clock = opts.clock ?? Date.now;
    this.safeNonces = new SafeNonceLedger(opts.store.db);
    const secret = opts.evm?.secret ?? null;
    this.evmAddress = secret === null ? null : evmAddressOf(secret);
  }

  /**
   * Opens a signer over its store. The stored governance chain is verified
   * again from the pinned genesis at every start: the file is this signer's
   * own, but a verifier that trusts its disk blindly is one edit from lying.
   * A new store must be seeded with the genesis entry (see {@link Signer.init}).
   */
  static open(opts: SignerOptions): Signer {
    const stored = opts.store.governance();
    const chain = verifyGovernanceChain(
      opts.pinnedGenesis,
      stored.map((s) => ({ signed: s.signed, seenAt: s.seenAt })),
    );
    if (!chain.ok) {
      throw new CustosError(chain.code, `the signer's stored governance does not verify: ${chain.message}`);
    }
    return new Signer(opts, chain.value);
  }

  /** Seeds a new store with the genesis entry, checked against the pinned digest. */
  static init(opts: SignerOptions, genesis: SignedGovernanceEntry): Signer {
    if (opts.store.governance().length === 0) {
      const now = (opts.clock ?? Date.now)();
      const chain = verifyGovernanceChain(opts.pinnedGenesis, [{ signed: genesis, seenAt: now }]);
      if (!chain.ok) throw new CustosError(chain.code, chain.message);
      opts.store.insertGovernance(genesis, governanceDigest(genesis.entry), now);
    }
    return Signer.open(opts);
  }

  get governance(): GovernanceState {
    return this.state;
  }

  /**
   * Countersigns the coordinator's audit head (docs/architecture.md "Audit entry"). The
   * signer keeps every head it signed: asked to sign a different head for a
   * seq it already signed, it refuses (the log was rewritten) and returns a
   * refusal for the coordinator to relay as an alert (THREATS 30).
   */
  countersign(
    request: unknown,
  ): { ok: true; checkpoint: SignedCheckpoint } | { ok: false; code: ErrorCode; message: string } {
    let seq: number;
    let head: Digest;
    try {
      const parsed = checkpointRequest.parse(request);
      seq = parsed.seq;
      head = parsed.head;
    } catch (err) {
      return { ok: false, code: 'INVALID_VALUE', message: `malformed checkpoint request: ${messageOf(err)}` };
    }
    const store = this.opts.store;
    return store.exclusive(() => {
      const known = store.checkpointAt(seq);
      if (known !== null && known !== head) {
        return {
          ok: false as const,
          code: 'AUDIT_CHAIN_BROKEN' as const,
          message: `audit entry ${seq} was countersigned with another head before: the log was rewritten`,
        };
      }
      const at = this.clock();
      store.insertCheckpoint(seq, head, at);
      const checkpoint = signCheckpoint(this.opts.identitySecret, {
        v: 1,
        org: this.state.org,
        signer: this.opts.id,
        seq,
        head,
        at,
      });
      return { ok: true as const, checkpoint };
    });
  }

  /**
   * Handles one job (raw JSON value as received) and returns the signed result. Never throws on bad input.
   * `watcherFreezes` (issue 12) are applied once governance is at the job's head, before the decision, so a
   * signer that was behind still meets a watcher's freeze at its new head + 1.
   */
  async handle(
    raw: unknown,
    source: GovernanceSource,
    watcherFreezes: readonly unknown[] = [],
  ): Promise<SignerResult> {
    let job: SignerJob;
    if (
      typeof raw === 'object' &&
      raw !== null &&
      !Array.isArray(raw) &&
      (raw as { intent?: unknown }).intent == null
    ) {
      // THREATS 27: a transaction with no approved intent behind it.
      return this.finish(
        jobIdOf(raw),
        null,
        null,
        refusal('NO_APPROVED_INTENT', 'the job carries no intent'),
      );
    }
    try {
      job = signerJob.parse(raw);
    } catch (err) {
      const code = err instanceof CustosError ? err.code : 'INVALID_VALUE';
      return this.finish(jobIdOf(raw), null, null, refusal(code, `the job is malformed: ${messageOf(err)}`));
    }
    const digest = intentDigestSafe(job.intent.intent);
    const refused = await this.syncGovernance(job, source);
    if (refused !== null) return this.finish(job.id, digest, null, refused);
    for (const freeze of watcherFreezes) this.applyWatcherFreeze(freeze);
    if (job.safeTx !== undefined) return this.decideEvm(job, digest, await this.attest(job));
    return this.decide(job, digest);
  }

  /**
   * Reads the intent's Safe from this signer's own node (state attestation,
   * issue 9): the node must answer for the governed chain id, and every
   * field is read at one block. The only I/O of an EVM decision, done before
   * its transaction; the comparison is the decision's.
   */
  private async attest(job: SignerJob): Promise<Attestation> {
    const evm = this.opts.evm;
    if (evm?.attestation === 'off') return { kind: 'off' };
    const wallet = this.state.wallets.get(job.intent.intent.wallet);
    // No governed Safe: the decision refuses before it looks at the attestation.
    if (wallet === undefined || !isSafeWallet(wallet)) return { kind: 'failed', message: 'no governed Safe' };
    const chainId = evmChainId(wallet.chain);
    const url = chainId === undefined ? undefined : evm?.rpc.get(chainId);
    if (chainId === undefined || url === undefined) return { kind: 'unconfigured', chain: wallet.chain };
    // A fresh client per read: viem caches eth_blockNumber per client (4 s by default), and a
    // read pinned to a cached block would attest the Safe as it was, not as it is.
    const client = evmClient(url);
    try {
      // A node for another chain would attest another Safe that happens to share the address.
      const served = await client.getChainId();
      if (served !== chainId) {
        return {
          kind: 'failed',
          message: `the node at the configured URL serves chain ${served}, not ${chainId}`,
        };
      }
      return { kind: 'read', state: await readSafeState(client, wallet.address as Address) };
    } catch (err) {
      return { kind: 'failed', message: messageOf(err).split('\n')[0]!.slice(0, 200) };
    }
  }

  /**
   * The EVM decision in one exclusive transaction, as {@link decide}: the
   * ledger row (its txid the safeTxHash) and the Safe nonce row commit before
   * the signature is returned. A SAFE_STATE_MISMATCH freezes this signer in
   * the same transaction.
   */
  private decideEvm(job: SignerJob, digest: Digest | null, attestation: Attestation): SignerResult {
    const store = this.opts.store;
    return store.exclusive(() => {
      const now = this.clock();
      const intent = job.intent.intent;
      const wallet = this.state.wallets.get(intent.wallet);
      const safe = wallet !== undefined && isSafeWallet(wallet) ? wallet : null;
      const proposedNonce = job.safeTx === undefined ? -1n : BigInt(job.safeTx.nonce);
      const decision = decideEvmJob({
        job,
        digest,
        state: this.state,
        now,
        chains: this.opts.chains,
        signerId: this.opts.id,
        evmSecret: this.opts.evm?.secret ?? null,
        evmAddress: this.evmAddress,
        freeze: store.freeze(),
        prior: digest === null ? null : store.ledgerFor(digest),
        ledger: store.ledgerView(),
        nextNonce: safe === null ? 0n : this.safeNonces.nextNonce(safe.chain, safe.address),
        signedAtNonce:
          safe === null ? null : this.safeNonces.signedAt(safe.chain, safe.address, proposedNonce),
        attestation,
      });
      if (!decision.ok) {
        if (decision.code === 'SAFE_STATE_MISMATCH') {
          store.setFreeze({
            code: 'SAFE_STATE_MISMATCH',
            reason: decision.message.slice(0, 400),
            at: now,
            governanceSeq: this.state.seq,
            evidence: null,
          });
        }
        const critical = EVM_CRITICAL.has(decision.code);
        const message =
          decision.code === 'SAFE_STATE_MISMATCH' ? `${decision.message}; signer frozen` : decision.message;
        const result = this.refusalResult(job.id, digest, new Refused(decision.code, message, { critical }));
        store.insertDecision(job.id, digest, result);
        return result;
      }
      const d = decision.value;
      if (d.kind === 'repeat') return d.result;
      const result = this.result(job.id, digest, d.safeTxHash, 'signed', null, {
        safeSignature: d.safeSignature,
      });
      store.insertLedger({
        intent: digest as Digest,
        wallet: intent.wallet,
        asset: intent.asset,
        amount: intent.amount,
        to: intent.to,
        requester: intent.requester,
        at: now,
        txid: d.safeTxHash,
        job: job.id,
        result,
        changeIndex: null,
      });
      this.safeNonces.insert({
        chain: d.chain,
        safe: d.safe,
        nonce: d.nonce,
        safeTxHash: d.safeTxHash,
        intent: digest as Digest,
        at: now,
      });
      store.insertDecision(job.id, digest, result);
      return result;
    });
  }

  /**
   * Applies a freeze pulled from a configured watcher (issue 12), so a
   * coordinator that withholds it cannot keep this signer signing. The entry
   * gets no trust from where it came from: it must be a `freeze` at this
   * signer's head + 1 linked to its head, and pass applyGovernance on this
   * signer's own state and clock (signed by a governed admin or watcher), as
   * any entry from the coordinator must. It is then stored as the next entry
   * of this signer's chain, so every later job is refused FROZEN until a
   * quorum-signed unfreeze. An entry this signer already holds is `known`;
   * one for another head (the chain moved on, or the watcher is behind) is
   * `stale` and ignored. Never throws on bad input.
   */
  applyWatcherFreeze(
    raw: unknown,
  ): { outcome: 'applied' | 'known' | 'stale' } | { outcome: 'refused'; code: ErrorCode; message: string } {
    let signed: SignedGovernanceEntry;
    try {
      signed = signedGovernanceEntry.parse(raw);
    } catch (err) {
      const code = err instanceof CustosError ? err.code : 'INVALID_VALUE';
      return { outcome: 'refused', code, message: `the freeze is malformed: ${messageOf(err)}` };
    }
    const entry = signed.entry;
    if (entry.kind !== 'freeze') {
      return {
        outcome: 'refused',
        code: 'GOVERNANCE_INVALID',
        message: `a watcher served a ${entry.kind} entry`,
      };
    }
    const store = this.opts.store;
    const digest = governanceDigest(entry);
    if (entry.seq <= this.state.seq) {
      return { outcome: store.governanceDigestAt(entry.seq) === digest ? 'known' : 'stale' };
    }
    if (entry.seq !== this.state.seq + 1 || entry.prev !== this.state.head) return { outcome: 'stale' };
    const now = this.clock();
    const next = applyGovernance(this.state, signed, now);
    if (!next.ok) {
      const code: ErrorCode =
        next.code === 'QUORUM_NOT_MET' || next.code === 'BAD_SIGNATURE'
          ? 'GOVERNANCE_SIGNATURE_INVALID'
          : next.code;
      return { outcome: 'refused', code, message: `freeze ${entry.seq} refused: ${next.message}` };
    }
    store.exclusive(() => store.insertGovernance(signed, digest, now));
    this.state = next.value;
    return { outcome: 'applied' };
  }

  /** The Safe nonces this signer signed, for status and tests. */
  signedSafeNonces() {
    return this.safeNonces.all();
  }

  /**
   * Brings governance up to the job's head; refuses forks, rollbacks and
   * unverifiable entries. Null when the head is this signer's, else the refusal.
   */
  private async syncGovernance(job: SignerJob, source: GovernanceSource): Promise<Refused | null> {
    const head = job.governance;
    const store = this.opts.store;
    if (head.seq <= this.state.seq) {
      if (store.governanceDigestAt(head.seq) === head.digest) return null;
      // An unsigned claim against this signer's verified chain: ask for the entry it names.
      return this.challenge(head, source);
    }
    let fetched: unknown;
    try {
      fetched = await source.governanceEntries(this.state.seq, head.seq);
    } catch (err) {
      return new Refused('UNAVAILABLE', `could not fetch governance entries: ${messageOf(err)}`);
    }
    let entries: SignedGovernanceEntry[];
    try {
      entries = governanceEntries.parse(fetched);
    } catch (err) {
      return new Refused('GOVERNANCE_INVALID', `governance entries are malformed: ${messageOf(err)}`);
    }
    for (const signed of entries) {
      const seq = signed.entry.seq;
      const d = governanceDigest(signed.entry);
      const known = store.governanceDigestAt(seq);
      if (known !== null) {
        if (known !== d) return this.conflict(signed, d);
        continue;
      }
      // A successor that does not link to this signer's head is a fork if its signatures hold.
      if (seq === this.state.seq + 1 && signed.entry.prev !== this.state.head)
        return this.conflict(signed, d);
      const now = this.clock();
      const next = applyGovernance(this.state, signed, now);
      if (!next.ok) {
        const code: ErrorCode =
          next.code === 'QUORUM_NOT_MET' || next.code === 'BAD_SIGNATURE'
            ? 'GOVERNANCE_SIGNATURE_INVALID'
            : next.code;
        return new Refused(code, `governance entry ${seq} refused: ${next.message}`);
      }
      store.exclusive(() => {
        store.insertGovernance(signed, d, now);
        // A quorum-signed unfreeze applied after this signer froze itself clears that freeze.
        const local = store.freeze();
        if (
          signed.entry.kind === 'unfreeze' &&
          local !== null &&
          (local.governanceSeq === null || seq > local.governanceSeq)
        ) {
          store.clearFreeze();
        }
      });
      this.state = next.value;
    }
    if (this.state.seq < head.seq) {
      return new Refused(
        'GOVERNANCE_CHAIN_BROKEN',
        `the coordinator did not provide governance up to seq ${head.seq}`,
      );
    }
    const mine = store.governanceDigestAt(head.seq);
    return mine === head.digest ? null : headMismatch(head, mine, 'the entries served lead elsewhere');
  }

  /**
   * The job's head names another digest at a seq this signer applied. That
   * digest is unsigned, so it proves nothing: the signer asks the coordinator
   * for the entry. A quorum-signed entry with that digest is an equivocation
   * (see {@link conflict}); anything less is a refusal, not a freeze.
   */
  private async challenge(head: GovernanceHead, source: GovernanceSource): Promise<Refused> {
    const mine = this.opts.store.governanceDigestAt(head.seq);
    let entries: SignedGovernanceEntry[];
    try {
      entries = governanceEntries.parse(await source.governanceEntries(head.seq - 1, head.seq));
    } catch (err) {
      return headMismatch(head, mine, `the coordinator shows no entry for it (${messageOf(err)})`);
    }
    const claimed = entries.find((e) => e.entry.seq === head.seq && digestSafe(e) === head.digest);
    if (claimed === undefined)
      return headMismatch(head, mine, 'the coordinator shows no entry with that digest');
    return this.conflict(claimed, head.digest);
  }

  /**
   * `other` conflicts with this signer's chain: another digest at a seq it
   * applied, or (at the next seq) a `prev` that is not its head. It is proof
   * of an equivocation only if it verifies against this signer's own state
   * before that seq, signed by a quorum of that state's admins (a freeze,
   * which one admin may sign, needs the quorum here too). Then the signer
   * keeps both entries, freezes itself and alerts with them as evidence;
   * otherwise the entry is refused with its code and a critical alert.
   */
  private conflict(other: SignedGovernanceEntry, digest: Digest): Refused {
    const store = this.opts.store;
    const seq = other.entry.seq;
    if (seq === 0) {
      return new Refused('WRONG_ORG', `a second genesis (${digest}) is not the pinned one`, {
        critical: true,
      });
    }
    const before = this.stateAt(seq - 1);
    const now = this.clock();
    // The state before `seq` with the other entry's `prev` as head: its signatures are what is judged.
    const checked = applyGovernance({ ...before, head: other.entry.prev }, other, now);
    if (!checked.ok) {
      const code: ErrorCode =
        checked.code === 'QUORUM_NOT_MET' ||
        checked.code === 'BAD_SIGNATURE' ||
        checked.code === 'GOVERNANCE_SIGNATURE_INVALID'
          ? 'GOVERNANCE_SIGNATURE_INVALID'
          : checked.code === 'WRONG_ORG'
            ? 'WRONG_ORG'
            : 'GOVERNANCE_HEAD_MISMATCH';
      return new Refused(
        code,
        `governance entry ${seq} (${digest}) conflicts with this signer's chain and does not verify: ${checked.message}`,
        { critical: true },
      );
    }
    const admins = new Set(
      other.signatures.filter((s) => hasRole(before, s.member, ADMIN_ROLE, now)).map((s) => s.member),
    );
    if (admins.size < effectiveQuorum(before, now)) {
      return new Refused(
        'GOVERNANCE_HEAD_MISMATCH',
        `governance entry ${seq} (${digest}) conflicts with this signer's chain, signed by fewer than a quorum of admins`,
        { critical: true },
      );
    }
    const sameSeq = store.governanceAt(seq);
    const known = sameSeq ?? store.governanceAt(seq - 1);
    if (known === null) throw new CustosError('INTERNAL', `no stored governance entry at ${seq - 1}`);
    const knownEvidence = { seq: known.signed.entry.seq, digest: known.digest, signed: known.signed };
    const evidence: EvidenceEntry[] = [
      { seq: knownEvidence.seq, digest: knownEvidence.digest },
      { seq, digest },
    ];
    const reason =
      sameSeq !== null
        ? `two quorum-signed entries for seq ${seq}: ${known.digest} (this signer's) and ${digest}`
        : `a quorum-signed entry ${seq} (${digest}) follows ${other.entry.prev}, not this signer's ${known.digest}`;
    store.exclusive(() => {
      const id = store.insertEquivocation(knownEvidence, { seq, digest, signed: other }, now);
      store.setFreeze({
        code: 'GOVERNANCE_EQUIVOCATION',
        reason,
        at: now,
        governanceSeq: this.state.seq,
        evidence: id,
      });
    });
    return new Refused('GOVERNANCE_EQUIVOCATION', `governance equivocation: ${reason}; signer frozen`, {
      critical: true,
      evidence,
    });
  }

  /** This signer's verified state after `seq` (a prefix of its own stored chain). */
  private stateAt(seq: number): GovernanceState {
    if (seq === this.state.seq) return this.state;
    const stored = this.opts.store.governance().filter((s) => s.signed.entry.seq <= seq);
    const chain = verifyGovernanceChain(
      this.opts.pinnedGenesis,
      stored.map((s) => ({ signed: s.signed, seenAt: s.seenAt })),
    );
    if (!chain.ok)
      throw new CustosError(chain.code, `the stored governance does not verify: ${chain.message}`);
    return chain.value;
  }

  /**
   * The decision, the signature and the durable record, in one exclusive
   * transaction: load what the decision needs from this signer's store, call
   * the pure {@link decideJob}, persist its outcome. The transaction commits
   * (synchronous=FULL) before the result is returned, so no signature leaves
   * the process before its ledger row is on disk (THREATS 32).
   */
  private decide(job: SignerJob, digest: Digest | null): SignerResult {
    const store = this.opts.store;
    return store.exclusive(() => {
      const now = this.clock();
      const prior = digest === null ? null : store.ledgerFor(digest);
      const decision = decideJob({
        job,
        digest,
        state: this.state,
        now,
        chains: this.opts.chains,
        key: this.opts.key,
        freeze: store.freeze(),
        prior,
        ledger: store.ledgerView(),
        highestChange: store.highestChangeIndex(job.intent.intent.wallet),
        replacements: digest === null || job.bump === undefined ? [] : store.replacementsFor(digest),
      });
      if (!decision.ok) {
        const result = this.refusalResult(job.id, digest, new Refused(decision.code, decision.message));
        store.insertDecision(job.id, digest, result);
        return result;
      }
      const d = decision.value;
      if (d.kind === 'repeat') return d.result;
      const intent = job.intent.intent;
      const result = this.result(job.id, digest, d.txid, 'signed', null, { psbt: d.psbt });
      if (d.kind === 'replacement') {
        // Beside the original's ledger row, never a second one: the amount counts once (issue 13).
        store.insertReplacement({
          txid: d.txid,
          intent: digest as Digest,
          bump: d.bump,
          replaces: d.replaces,
          job: job.id,
          at: now,
          result,
        });
        store.insertDecision(job.id, digest, result);
        return result;
      }
      store.insertLedger({
        intent: digest as Digest,
        wallet: intent.wallet,
        asset: intent.asset,
        amount: intent.amount,
        to: intent.to,
        ...(intent.outputs === undefined ? {} : { outputs: intent.outputs }),
        requester: intent.requester,
        at: now,
        txid: d.txid,
        job: job.id,
        result,
        changeIndex: d.changeIndex,
      });
      store.insertDecision(job.id, digest, result);
      return result;
    });
  }

  private finish(jobId: string, digest: Digest | null, txid: string | null, err: Refused): SignerResult {
    const result = this.refusalResult(jobId, digest, err, txid);
    this.opts.store.insertDecision(jobId, digest, result);
    return result;
  }

  private refusalResult(
    jobId: string,
    digest: Digest | null,
    err: Refused,
    txid: string | null = null,
  ): SignerResult {
    const extra: { message: string; alert?: SignerAlert } = {
      message: err.message.slice(0, 512),
    };
    if (CRITICAL.has(err.code) || err.extra.critical === true) {
      extra.alert = {
        severity: 'critical',
        code: err.code,
        ...(err.extra.evidence === undefined ? {} : { evidence: err.extra.evidence }),
      };
    }
    return this.result(jobId, digest, txid, 'refused', err.code, extra);
  }

  private result(
    jobId: string,
    digest: Digest | null,
    txid: string | null,
    outcome: 'signed' | 'refused',
    code: ErrorCode | null,
    extra: Omit<SignerResult, 'receipt' | 'signature'>,
  ): SignerResult {
    const receipt: Receipt = {
      v: 1,
      signer: this.opts.id,
      job: jobId,
      intent: digest,
      txid: txid as Receipt['txid'],
      outcome,
      code,
      governanceSeq: this.state.seq,
      governanceHead: this.state.head,
      at: this.clock(),
    };
    const signature = signBytes(this.opts.identitySecret, fromHex(receiptDigest(receipt)));
    return { receipt, signature, ...extra };
  }
}

function refusal(code: ErrorCode, message: string): Refused {
  return new Refused(code, message);
}

/** An unsigned head that disagrees with this signer's verified chain: a refusal with a critical alert. */
function headMismatch(head: GovernanceHead, mine: Digest | null, why: string): Refused {
  return new Refused(
    'GOVERNANCE_HEAD_MISMATCH',
    `the job names governance entry ${head.seq} as ${head.digest}, this signer's is ${mine ?? 'unknown'}: ${why}`,
    { critical: true },
  );
}

function digestSafe(signed: SignedGovernanceEntry): Digest | null {
  try {
    return governanceDigest(signed.entry);
  } catch {
    return null;
  }
}

function intentDigestSafe(intent: Intent): Digest | null {
  try {
    return intentDigest(intent);
  } catch {
    return null;
  }
}

function jobIdOf(raw: unknown): string {
  if (typeof raw === 'object' && raw !== null && 'id' in raw) {
    const id = (raw as { id: unknown }).id;
    if (typeof id === 'string' && /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/.test(id)) return id;
  }
  return 'invalid-job';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
