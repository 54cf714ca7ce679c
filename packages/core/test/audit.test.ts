import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_PREV,
  AuditChainVerifier,
  type AuditVerifyOptions,
  appendAudit,
  signCheckpoint,
  verifyAuditChain,
  verifyCheckpointSignature,
} from '../src/audit.js';
import { toHex, utf8 } from '../src/bytes.js';
import { CustosError } from '../src/errors.js';
import { generateEd25519 } from '../src/keys.js';
import { type AuditEntry, auditEntryDigest, type SignedCheckpoint } from '../src/objects.js';
import { ZERO_DIGEST } from '../src/primitives.js';
import type { Digest } from '../src/types.js';

const ORG = toHex(sha256(utf8('genesis of the test organization'))) as Digest;
const signer1 = generateEd25519();
const signer2 = generateEd25519();
const signerKeys: ReadonlyMap<string, string> = new Map([
  ['signer-1', signer1.publicKey],
  ['signer-2', signer2.publicKey],
]);
const T0 = 1_700_000_000_000;

function hash(text: string): Digest {
  return toHex(sha256(utf8(text))) as Digest;
}

function chain(n: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  let prev: AuditEntry | null = null;
  for (let i = 0; i < n; i++) {
    prev = appendAudit(prev, {
      at: T0 + i * 1000,
      actor: i % 3 === 0 ? 'member:alice' : 'signer:signer-1',
      event: i % 2 === 0 ? 'intent.created' : 'approval.added',
      subject: `intent:${i >> 1}`,
      digest: hash(`payload ${i}`),
    });
    out.push(prev);
  }
  return out;
}

function checkpointAt(entries: readonly AuditEntry[], seq: number, signer = 'signer-1'): SignedCheckpoint {
  const key = signer === 'signer-2' ? signer2 : signer1;
  const head = auditEntryDigest(entries[seq] as AuditEntry);
  return signCheckpoint(key.secretKey, { v: 1, org: ORG, signer, seq, head, at: T0 + seq * 1000 + 1 });
}

function opts(checkpoints: SignedCheckpoint[]): AuditVerifyOptions {
  return { checkpoints, signerKeys, expectedOrg: ORG };
}

function edit(entries: readonly AuditEntry[], seq: number, change: Partial<AuditEntry>): AuditEntry[] {
  return entries.map((e) => (e.seq === seq ? { ...e, ...change } : e));
}

/** Rewrites entry `seq` and recomputes every prev after it, as an attacker with the database would. */
function rewriteFrom(entries: readonly AuditEntry[], seq: number, change: Partial<AuditEntry>): AuditEntry[] {
  const out: AuditEntry[] = entries.slice(0, seq);
  for (let i = seq; i < entries.length; i++) {
    const original = entries[i] as AuditEntry;
    const prev = i === 0 ? AUDIT_GENESIS_PREV : auditEntryDigest(out[i - 1] as AuditEntry);
    out.push({ ...original, ...(i === seq ? change : {}), prev });
  }
  return out;
}

function flipHex(d: string): Digest {
  return `${d[0] === '0' ? '1' : '0'}${d.slice(1)}` as Digest;
}

describe('appendAudit', () => {
  it('should start at seq 0 from the genesis prev and link each entry to the digest of the one before', () => {
    const entries = chain(3);
    expect(AUDIT_GENESIS_PREV).toBe(ZERO_DIGEST);
    expect(entries.map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(entries[0]?.prev).toBe(ZERO_DIGEST);
    expect(entries[1]?.prev).toBe(auditEntryDigest(entries[0] as AuditEntry));
    expect(entries[2]?.prev).toBe(auditEntryDigest(entries[1] as AuditEntry));
  });

  it('should throw a CustosError for a field outside the audit entry schema (a caller mistake)', () => {
    const e = { at: T0, actor: 'member:alice', event: 'Not An Event', subject: '', digest: hash('x') };
    expect(() => appendAudit(null, e)).toThrow(CustosError);
  });
});

describe('checkpoints', () => {
  it('should verify with the signer key and not with another', () => {
    const sc = checkpointAt(chain(2), 1);
    expect(verifyCheckpointSignature(sc, signer1.publicKey)).toBe(true);
    expect(verifyCheckpointSignature(sc, signer2.publicKey)).toBe(false);
    expect(
      verifyCheckpointSignature({ ...sc, checkpoint: { ...sc.checkpoint, seq: 2 } }, signer1.publicKey),
    ).toBe(false);
    expect(verifyCheckpointSignature(sc, 'not a key')).toBe(false);
  });
});

describe('verifyAuditChain (THREATS 30)', () => {
  it('THREATS 30: a valid 1000-entry chain with checkpoints verifies', () => {
    const entries = chain(1000);
    const checkpoints = [249, 499, 749, 999].flatMap((s) => [
      checkpointAt(entries, s),
      checkpointAt(entries, s, 'signer-2'),
    ]);
    // Given in any order.
    checkpoints.reverse();
    expect(verifyAuditChain(entries, opts(checkpoints))).toEqual({
      ok: true,
      entries: 1000,
      head: auditEntryDigest(entries[999] as AuditEntry),
      checkpointsVerified: 8,
    });
  });

  it('should accept an empty log with a null head', () => {
    expect(verifyAuditChain([])).toEqual({ ok: true, entries: 0, head: null, checkpointsVerified: 0 });
  });

  it('THREATS 30: a deleted row is named by its seq', () => {
    const entries = chain(20);
    const deleted = entries.filter((e) => e.seq !== 7);
    expect(verifyAuditChain(deleted, opts([checkpointAt(entries, 19)]))).toMatchObject({
      ok: false,
      code: 'AUDIT_CHAIN_BROKEN',
      firstBadSeq: 7,
    });
    expect(verifyAuditChain(entries.slice(1))).toMatchObject({ ok: false, firstBadSeq: 0 });
  });

  it('THREATS 30: an edited row in the middle is named by its seq, with or without checkpoints', () => {
    const entries = chain(20);
    const edited = edit(entries, 11, { subject: 'intent:999' });
    const r = verifyAuditChain(edited);
    expect(r).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 11 });
    expect(r.ok ? '' : r.message).toContain('entry 11');
    expect(verifyAuditChain(edited, opts([checkpointAt(entries, 19)]))).toMatchObject({ firstBadSeq: 11 });
  });

  it('THREATS 30: an edited last row is caught when a checkpoint covers it, naming the range since the last good checkpoint', () => {
    const entries = chain(20);
    const edited = edit(entries, 19, { actor: 'member:mallory' });
    const r = verifyAuditChain(edited, opts([checkpointAt(entries, 9), checkpointAt(entries, 19)]));
    expect(r).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 10 });
    expect(r.ok ? '' : r.message).toContain('entries 10..19');
  });

  it('should not detect an edit of the last row by hashes alone: checkpoints close that gap', () => {
    const entries = chain(20);
    const edited = edit(entries, 19, { actor: 'member:mallory' });
    expect(verifyAuditChain(edited, opts([checkpointAt(entries, 9)]))).toMatchObject({ ok: true });
  });

  it('THREATS 30: a rewritten and relinked range is caught by the next checkpoint, which names the range', () => {
    const entries = chain(1000);
    const rewritten = rewriteFrom(entries, 600, { subject: 'intent:mallory' });
    const r = verifyAuditChain(rewritten, opts([checkpointAt(entries, 499), checkpointAt(entries, 749)]));
    expect(r).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 500 });
    expect(r.ok ? '' : r.message).toContain('entries 500..749');
  });

  it('THREATS 30: a truncated log is caught by a checkpoint beyond its end', () => {
    const entries = chain(20);
    const cps = [checkpointAt(entries, 9), checkpointAt(entries, 19)];
    const r = verifyAuditChain(entries.slice(0, 15), opts(cps));
    expect(r).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 15 });
    expect(r.ok ? '' : r.message).toContain('truncated');
    expect(verifyAuditChain([], opts(cps))).toMatchObject({
      ok: false,
      code: 'AUDIT_CHAIN_BROKEN',
      firstBadSeq: 0,
    });
  });

  it('THREATS 30: reordered rows are named by the first position out of order', () => {
    const entries = chain(20);
    const swapped = [...entries];
    [swapped[5], swapped[12]] = [swapped[12] as AuditEntry, swapped[5] as AuditEntry];
    expect(verifyAuditChain(swapped, opts([checkpointAt(entries, 19)]))).toMatchObject({
      ok: false,
      code: 'AUDIT_CHAIN_BROKEN',
      firstBadSeq: 5,
    });
    // Renumbered after the swap, so seqs are in order: the links still catch it.
    const renumbered = swapped.map((e, i) => ({ ...e, seq: i }));
    expect(verifyAuditChain(renumbered)).toMatchObject({ ok: false, firstBadSeq: 4 });
  });

  it('THREATS 30: a forged checkpoint signature is refused with CHECKPOINT_INVALID', () => {
    const entries = chain(20);
    const mallory = generateEd25519();
    const forged = signCheckpoint(mallory.secretKey, { ...checkpointAt(entries, 14).checkpoint });
    expect(verifyAuditChain(entries, opts([checkpointAt(entries, 9), forged]))).toMatchObject({
      ok: false,
      code: 'CHECKPOINT_INVALID',
      firstBadSeq: 14,
    });
    // A genuine signature over other checkpoint bytes.
    const moved = {
      ...checkpointAt(entries, 9),
      checkpoint: { ...checkpointAt(entries, 9).checkpoint, seq: 10 },
    };
    expect(verifyAuditChain(entries, opts([moved]))).toMatchObject({
      code: 'CHECKPOINT_INVALID',
      firstBadSeq: 10,
    });
  });

  it('THREATS 30: a checkpoint by an unknown signer is refused with CHECKPOINT_INVALID', () => {
    const entries = chain(20);
    const stranger = generateEd25519();
    const sc = signCheckpoint(stranger.secretKey, {
      ...checkpointAt(entries, 19).checkpoint,
      signer: 'signer-9',
    });
    const r = verifyAuditChain(entries, opts([sc]));
    expect(r).toMatchObject({ ok: false, code: 'CHECKPOINT_INVALID', firstBadSeq: 19 });
    expect(r.ok ? '' : r.message).toContain('unknown signer');
    // Without signer keys no signer is known.
    expect(verifyAuditChain(entries, { checkpoints: [checkpointAt(entries, 19)] })).toMatchObject({
      code: 'CHECKPOINT_INVALID',
    });
  });

  it('should refuse a checkpoint for another organization', () => {
    const entries = chain(5);
    const other = signCheckpoint(signer1.secretKey, {
      ...checkpointAt(entries, 4).checkpoint,
      org: hash('other org'),
    });
    expect(verifyAuditChain(entries, opts([other]))).toMatchObject({
      code: 'CHECKPOINT_INVALID',
      firstBadSeq: 4,
    });
  });

  it('should refuse a forged checkpoint past the end as CHECKPOINT_INVALID, not as a truncation', () => {
    const entries = chain(20);
    const mallory = generateEd25519();
    const forged = signCheckpoint(mallory.secretKey, { ...checkpointAt(entries, 19).checkpoint, seq: 40 });
    expect(verifyAuditChain(entries, opts([forged]))).toMatchObject({
      code: 'CHECKPOINT_INVALID',
      firstBadSeq: 40,
    });
  });

  it('should refuse a first entry that does not start from the genesis prev', () => {
    const entries = chain(3);
    expect(verifyAuditChain(edit(entries, 0, { prev: hash('elsewhere') }))).toMatchObject({
      code: 'AUDIT_CHAIN_BROKEN',
      firstBadSeq: 0,
    });
  });

  it('should name the entry after a checkpointed one when its prev no longer links to it', () => {
    const entries = chain(20);
    const edited = edit(entries, 10, { prev: flipHex((entries[10] as AuditEntry).prev) });
    expect(verifyAuditChain(edited, opts([checkpointAt(entries, 9)]))).toMatchObject({ firstBadSeq: 10 });
    // Without the checkpoint, entry 9 is as suspect as entry 10: the smaller seq is named.
    expect(verifyAuditChain(edited)).toMatchObject({ firstBadSeq: 9 });
  });

  it('should refuse an entry that is not exactly an audit entry', () => {
    const entries = chain(5);
    const extra = entries.map((e) => (e.seq === 2 ? ({ ...e, note: 'x' } as AuditEntry) : e));
    expect(verifyAuditChain(extra)).toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 2 });
    const badAt = entries.map((e) => (e.seq === 3 ? { ...e, at: 1.5 } : e));
    expect(verifyAuditChain(badAt)).toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 3 });
    const lone = entries.map((e) => (e.seq === 4 ? { ...e, subject: '\ud800' } : e));
    expect(verifyAuditChain(lone)).toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 4 });
  });

  it('should hash each entry exactly as auditEntryDigest does, for any strings', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    fc.assert(
      fc.property(
        fc.record({ at: fc.maxSafeNat(), actor: text, event: text, subject: text, digest: text }),
        (fields) => {
          const first = { seq: 0, prev: AUDIT_GENESIS_PREV, ...fields } as AuditEntry;
          const second = { ...first, seq: 1, prev: auditEntryDigest(first) };
          expect(verifyAuditChain([first, second])).toEqual({
            ok: true,
            entries: 2,
            head: auditEntryDigest(second),
            checkpointsVerified: 0,
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('THREATS 30: any single deletion, edit or swap under a final checkpoint is detected at or before it', () => {
    const fields = ['seq', 'prev', 'at', 'actor', 'event', 'subject', 'digest'] as const;
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('delete' as const), i: fc.nat() }),
      fc.record({ kind: fc.constant('edit' as const), i: fc.nat(), field: fc.constantFrom(...fields) }),
      fc.record({ kind: fc.constant('swap' as const), i: fc.nat(), j: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.option(fc.nat()), mutation, (n, midCheckpoint, m) => {
        const entries = chain(n);
        const cps = [checkpointAt(entries, n - 1)];
        if (midCheckpoint !== null) cps.push(checkpointAt(entries, midCheckpoint % n, 'signer-2'));
        let mutated: AuditEntry[];
        let position: number;
        const i = m.i % n;
        if (m.kind === 'delete') {
          mutated = entries.filter((e) => e.seq !== i);
          position = i;
        } else if (m.kind === 'edit') {
          const e = entries[i] as AuditEntry;
          const change: Partial<AuditEntry> = {
            seq: { seq: e.seq + 1 },
            prev: { prev: flipHex(e.prev) },
            at: { at: e.at + 1 },
            actor: { actor: `${e.actor}x` },
            event: { event: `${e.event}x` },
            subject: { subject: `${e.subject}x` },
            digest: { digest: flipHex(e.digest) },
          }[m.field];
          mutated = entries.map((x, k) => (k === i ? { ...x, ...change } : x));
          position = i;
        } else {
          const j = m.j % n;
          if (i === j) return; // not a mutation
          mutated = [...entries];
          [mutated[i], mutated[j]] = [entries[j] as AuditEntry, entries[i] as AuditEntry];
          position = Math.min(i, j);
        }
        const r = verifyAuditChain(mutated, opts(cps));
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.code).toBe('AUDIT_CHAIN_BROKEN');
          expect(r.firstBadSeq).toBeLessThanOrEqual(position);
        }
        expect(verifyAuditChain(entries, opts(cps)).ok).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('AuditChainVerifier (streaming)', () => {
  it('should report progress, return null while all is well and the same failure once broken', () => {
    const entries = chain(10);
    const v = new AuditChainVerifier(opts([checkpointAt(entries, 4)]));
    for (const e of entries.slice(0, 5)) expect(v.push(e)).toBeNull();
    expect(v.entries).toBe(5);
    expect(v.head).toBe(auditEntryDigest(entries[4] as AuditEntry));
    const failed = v.push(entries[6] as AuditEntry);
    expect(failed).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 5 });
    expect(v.push(entries[5] as AuditEntry)).toBe(failed);
    expect(v.finish()).toBe(failed);
  });

  it('should give the same result as verifyAuditChain when fed page by page', () => {
    const entries = chain(100);
    const cps = [checkpointAt(entries, 33), checkpointAt(entries, 99)];
    const v = new AuditChainVerifier(opts(cps));
    for (let page = 0; page < 100; page += 7) {
      for (const e of entries.slice(page, page + 7)) expect(v.push(e)).toBeNull();
    }
    expect(v.finish()).toEqual(verifyAuditChain(entries, opts(cps)));
    expect(v.finish()).toMatchObject({ ok: true, entries: 100, checkpointsVerified: 2 });
  });

  it('should throw a CustosError when an entry is pushed after finish (a caller mistake)', () => {
    const entries = chain(2);
    const v = new AuditChainVerifier();
    v.push(entries[0] as AuditEntry);
    v.finish();
    expect(() => v.push(entries[1] as AuditEntry)).toThrow(CustosError);
  });
});
