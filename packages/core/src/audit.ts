/**
 * The audit hash chain and signed checkpoints (docs/architecture.md "Audit entry"; THREATS 30).
 *
 * Each entry carries `prev`, the digest of the entry before it
 * (auditEntryDigest, the chain hash), and a `seq` that grows by exactly one
 * from 0. Deleting, reordering or editing a row breaks a link, so
 * `custos audit verify` finds it. Links alone cannot catch two things: an
 * edit of the last entry (nothing after it commits to it), and a rewrite that
 * recomputes every `prev` after the edit, or cuts the tail off. Checkpoints
 * close that gap: each signer countersigns `(seq, head)` with its own key, so a
 * checkpoint commits to entry `seq` and, through the links, to every entry
 * before it. A log is only as protected as its latest checkpoint.
 *
 * What `firstBadSeq` names: the smallest seq whose entry is not the one the
 * chain or a checkpoint commits to, as far as the evidence shows.
 * - A missing or misplaced seq (a deleted or reordered row): that seq.
 * - A broken link (entry k+1's prev is not the digest of entry k): k, since
 *   entry k no longer matches what entry k+1 commits to; either entry k was
 *   edited or entry k+1 was. If a verified checkpoint vouches for entry k,
 *   entry k+1 is named instead.
 * - A checkpoint at s whose head is not the digest of entry s: the first
 *   entry after the last checkpoint that matched (the safe lower bound). The
 *   links still hold, so any of the entries in that range may have been
 *   rewritten and relinked; the message names the range.
 * - A checkpoint beyond the last entry (a truncated log): last seq + 1.
 *
 * Speed: a CLI verifies logs of millions of entries, so `AuditChainVerifier`
 * takes them one at a time (pages from the database), canonicalizes each once,
 * writes it into one reused buffer and hashes it there. The canonical text is
 * built directly from the seven fields in RFC 8785 member order, which is the
 * exact text `canonicalize` produces for an audit entry (a test holds the two
 * together); an entry of any other shape is refused as malformed.
 */

import { fromHex, toHex } from './bytes.js';
import { CustosError } from './errors.js';
import { sha256 } from './hash.js';
import { digestPrefix } from './jcs.js';
import { signBytes, verifyEd25519 } from './keys.js';
import {
  type AuditEntry,
  auditEntry,
  auditEntryDigest,
  type Checkpoint,
  checkpointDigest,
  checkpoint as checkpointSchema,
  type SignedCheckpoint,
} from './objects.js';
import { ZERO_DIGEST } from './primitives.js';
import type { Digest, Millis } from './types.js';

/** The `prev` of the first entry (seq 0). */
export const AUDIT_GENESIS_PREV: Digest = ZERO_DIGEST;

/**
 * Builds the next audit entry: seq one past `prevEntry`'s (0 for the first),
 * prev the digest of `prevEntry` (AUDIT_GENESIS_PREV for the first).
 * Throws CustosError if a field does not fit the audit entry schema (a caller's mistake).
 */
export function appendAudit(
  prevEntry: AuditEntry | null,
  e: { at: Millis; actor: string; event: string; subject: string; digest: Digest },
): AuditEntry {
  return auditEntry.parse({
    seq: prevEntry === null ? 0 : prevEntry.seq + 1,
    prev: prevEntry === null ? AUDIT_GENESIS_PREV : auditEntryDigest(prevEntry),
    at: e.at,
    actor: e.actor,
    event: e.event,
    subject: e.subject,
    digest: e.digest,
  });
}

/**
 * Signs a checkpoint: Ed25519 over the 32 raw bytes of checkpointDigest(c).
 * Throws CustosError if `c` does not fit the checkpoint schema (a caller mistake).
 */
export function signCheckpoint(secretKey: Uint8Array, c: Checkpoint): SignedCheckpoint {
  const body = checkpointSchema.parse(c);
  return { checkpoint: body, signature: signBytes(secretKey, fromHex(checkpointDigest(body))) };
}

/**
 * True when `sc.signature` is the Ed25519 signature of `signerPublicKeyHex`
 * over the checkpoint digest; false on any malformed input.
 */
export function verifyCheckpointSignature(sc: SignedCheckpoint, signerPublicKeyHex: string): boolean {
  try {
    return verifyEd25519(signerPublicKeyHex, fromHex(checkpointDigest(sc.checkpoint)), sc.signature);
  } catch {
    return false;
  }
}

export interface AuditVerifyOptions {
  /** Signed checkpoints to check the log against, in any order. */
  readonly checkpoints?: readonly SignedCheckpoint[];
  /** Signer id -> Ed25519 public key hex. A checkpoint by a signer not listed is invalid. */
  readonly signerKeys?: ReadonlyMap<string, string>;
  /** When given, every checkpoint must be for this organization (genesis digest). */
  readonly expectedOrg?: Digest;
}

export type AuditVerifyResult =
  | {
      readonly ok: true;
      /** Number of entries verified. */
      readonly entries: number;
      /** Digest of the last entry, null for an empty log. */
      readonly head: Digest | null;
      /** Number of checkpoints whose signature and head were verified. */
      readonly checkpointsVerified: number;
    }
  | {
      readonly ok: false;
      readonly code: 'AUDIT_CHAIN_BROKEN' | 'CHECKPOINT_INVALID';
      /** The first seq that is not what the chain or a checkpoint commits to (see the module header). */
      readonly firstBadSeq: number;
      readonly message: string;
    };

type AuditFailure = Extract<AuditVerifyResult, { ok: false }>;

const PREFIX = digestPrefix('audit', 1);
const encoder = new TextEncoder();

/**
 * Verifies an audit log streamed one entry at a time, in seq order, with
 * constant memory (besides the checkpoints). `push` returns null while all is
 * well and the failure on the first bad entry; once failed, it keeps returning
 * that failure. `finish` checks what only the end can show (a checkpoint past
 * the last entry) and returns the result.
 *
 * @example
 * const v = new AuditChainVerifier({ checkpoints, signerKeys });
 * for await (const page of pages) for (const e of page) if (v.push(e)) break;
 * const result = v.finish();
 */
export class AuditChainVerifier {
  readonly #checkpoints: readonly SignedCheckpoint[];
  readonly #signerKeys: ReadonlyMap<string, string> | undefined;
  readonly #expectedOrg: Digest | undefined;
  #next = 0;
  #cpIndex = 0;
  /** Seq of the last entry a verified checkpoint vouches for, -1 for none. */
  #vouchedSeq = -1;
  #checkpointsVerified = 0;
  #head: Digest = AUDIT_GENESIS_PREV;
  #failure: AuditFailure | null = null;
  #result: AuditVerifyResult | null = null;
  #buffer = new Uint8Array(1024);

  constructor(opts: AuditVerifyOptions = {}) {
    this.#signerKeys = opts.signerKeys;
    this.#expectedOrg = opts.expectedOrg;
    const cps = [...(opts.checkpoints ?? [])];
    const badSeq = cps.find((sc) => !isSeq(sc?.checkpoint?.seq));
    if (badSeq !== undefined) {
      this.#failure = failure('CHECKPOINT_INVALID', 0, 'a checkpoint has no valid seq');
    }
    // A stable sort: checkpoints for one seq (one per signer) keep their order.
    this.#checkpoints = badSeq === undefined ? cps.sort((a, b) => a.checkpoint.seq - b.checkpoint.seq) : [];
  }

  /** Number of entries accepted so far (for a progress display). */
  get entries(): number {
    return this.#next;
  }

  /** Digest of the last entry accepted so far, null before the first. */
  get head(): Digest | null {
    return this.#next === 0 ? null : this.#head;
  }

  /** Checks the next entry. Returns null if it is fine so far, or the failure. */
  push(entry: AuditEntry): AuditVerifyResult | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#result !== null) throw new CustosError('INVALID_VALUE', 'push after finish');
    const seq = this.#next;

    // A deleted row leaves a gap; a reordered or duplicated row puts a seq out of place.
    const found: unknown = entry?.seq;
    if (found !== seq) {
      const what =
        typeof found === 'number' && found > seq
          ? `entry ${seq} is missing (seq ${found} is in its place): rows were deleted or reordered`
          : `entry ${seq} is out of place (found seq ${String(found)}): rows were reordered or duplicated`;
      return this.#fail('AUDIT_CHAIN_BROKEN', seq, what);
    }

    const digest = this.#digest(entry);
    if (digest === null) {
      return this.#fail('AUDIT_CHAIN_BROKEN', seq, `entry ${seq} is malformed: it is not an audit entry`);
    }

    // The link: prev is the digest of the entry before (the genesis prev for entry 0).
    if (entry.prev !== this.#head) {
      if (seq === 0) {
        return this.#fail(
          'AUDIT_CHAIN_BROKEN',
          0,
          'entry 0 does not start the chain (its prev is not the genesis prev)',
        );
      }
      if (this.#vouchedSeq === seq - 1) {
        return this.#fail(
          'AUDIT_CHAIN_BROKEN',
          seq,
          `entry ${seq} does not link to entry ${seq - 1}, which a checkpoint vouches for: ` +
            `entry ${seq} was edited or replaced`,
        );
      }
      return this.#fail(
        'AUDIT_CHAIN_BROKEN',
        seq - 1,
        `entry ${seq - 1} is not the entry that entry ${seq} commits to: ` +
          `entry ${seq - 1} was edited (or entry ${seq}'s prev was)`,
      );
    }
    this.#head = digest;
    this.#next = seq + 1;

    // Checkpoints at this seq: each must be validly signed and commit to this entry.
    const cps = this.#checkpoints;
    let vouched = false;
    while (this.#cpIndex < cps.length) {
      const sc = cps[this.#cpIndex] as SignedCheckpoint;
      if (sc.checkpoint.seq !== seq) break;
      this.#cpIndex++;
      const problem = this.#checkpointProblem(sc);
      if (problem !== undefined) return this.#fail('CHECKPOINT_INVALID', seq, problem);
      if (sc.checkpoint.head !== digest) {
        const from = this.#vouchedSeq + 1;
        const range = from === seq ? `entry ${seq} was edited` : `entries ${from}..${seq} were rewritten`;
        // Name the start of the range: nothing after the last matching checkpoint can be trusted.
        return this.#fail(
          'AUDIT_CHAIN_BROKEN',
          from,
          `entry ${seq} is not the one the checkpoint of signer ${sc.checkpoint.signer} commits to: ` +
            `${range} (or cut and replaced)`,
        );
      }
      this.#checkpointsVerified++;
      vouched = true;
    }
    if (vouched) this.#vouchedSeq = seq;
    return null;
  }

  /** Ends the log: a checkpoint beyond the last entry means the log was truncated. */
  finish(): AuditVerifyResult {
    if (this.#failure !== null) return this.#failure;
    if (this.#result !== null) return this.#result;
    const rest = this.#checkpoints[this.#cpIndex];
    if (rest !== undefined) {
      const problem = this.#checkpointProblem(rest);
      if (problem !== undefined) return this.#fail('CHECKPOINT_INVALID', rest.checkpoint.seq, problem);
      const end = this.#next;
      return this.#fail(
        'AUDIT_CHAIN_BROKEN',
        end,
        `the log ends ${end === 0 ? 'before entry 0' : `at entry ${end - 1}`}, ` +
          `but signer ${rest.checkpoint.signer} ` +
          `checkpointed entry ${rest.checkpoint.seq}: the log was truncated`,
      );
    }
    this.#result = {
      ok: true,
      entries: this.#next,
      head: this.#next === 0 ? null : this.#head,
      checkpointsVerified: this.#checkpointsVerified,
    };
    return this.#result;
  }

  #fail(code: AuditFailure['code'], firstBadSeq: number, message: string): AuditFailure {
    this.#failure = failure(code, firstBadSeq, message);
    return this.#failure;
  }

  #checkpointProblem(sc: SignedCheckpoint): string | undefined {
    const c = sc.checkpoint;
    const key = this.#signerKeys?.get(c.signer);
    if (key === undefined)
      return `checkpoint at ${c.seq} is signed by an unknown signer ${JSON.stringify(c.signer)}`;
    if (!verifyCheckpointSignature(sc, key)) {
      return `checkpoint at ${c.seq}: the signature of signer ${c.signer} does not verify`;
    }
    if (this.#expectedOrg !== undefined && c.org !== this.#expectedOrg) {
      return `checkpoint at ${c.seq} is for another organization`;
    }
    return undefined;
  }

  /**
   * auditEntryDigest(e), computed without intermediate arrays: the RFC 8785
   * text of an audit entry is its seven members in code-unit order (actor, at,
   * digest, event, prev, seq, subject). Returns null for anything that is not
   * exactly an audit entry (where the two computations could differ).
   */
  #digest(e: AuditEntry): Digest | null {
    if (typeof e !== 'object' || e === null || Object.keys(e).length !== 7) return null;
    const { actor, at, digest, event, prev, seq, subject } = e;
    if (
      !isWellFormedString(actor) ||
      !isWellFormedString(digest) ||
      !isWellFormedString(event) ||
      !isWellFormedString(prev) ||
      !isWellFormedString(subject) ||
      !isSeq(at) ||
      !isSeq(seq)
    ) {
      return null;
    }
    const text =
      `${PREFIX}{"actor":${JSON.stringify(actor)},"at":${at},"digest":${JSON.stringify(digest)},` +
      `"event":${JSON.stringify(event)},"prev":${JSON.stringify(prev)},"seq":${seq},` +
      `"subject":${JSON.stringify(subject)}}`;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    if (this.#buffer.length < text.length * 3) this.#buffer = new Uint8Array(text.length * 3);
    const { written } = encoder.encodeInto(text, this.#buffer);
    return toHex(sha256(this.#buffer.subarray(0, written))) as Digest;
  }
}

/**
 * Verifies a whole audit log (entries in seq order) against the chain rules
 * and the signed checkpoints. See the module header for what `firstBadSeq`
 * names. An edit of the last entries after the latest checkpoint is only
 * detected if a checkpoint covers them: checkpoint often.
 */
export function verifyAuditChain(
  entries: Iterable<AuditEntry>,
  opts: AuditVerifyOptions = {},
): AuditVerifyResult {
  const verifier = new AuditChainVerifier(opts);
  for (const e of entries) {
    const failed = verifier.push(e);
    if (failed !== null) return failed;
  }
  return verifier.finish();
}

function failure(code: AuditFailure['code'], firstBadSeq: number, message: string): AuditFailure {
  return { ok: false, code, firstBadSeq, message };
}

function isSeq(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && !Object.is(value, -0);
}

function isWellFormedString(value: unknown): value is string {
  return typeof value === 'string' && value.isWellFormed();
}
