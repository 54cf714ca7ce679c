/**
 * Audit verification (issue 5): entries per second for the verifier that
 * `custos audit verify` runs, over a log of 1,000,000 entries with a signed
 * checkpoint every 10,000, against the ceiling measured in the same run:
 * sha256 over the same canonical bytes (the one cost verification cannot
 * avoid). Entries are built in memory; the CLI adds paging over HTTP on top.
 */
import {
  AuditChainVerifier,
  type AuditEntry,
  appendAudit,
  auditEntryDigest,
  canonicalize,
  digestOf,
  generateEd25519,
  type SignedCheckpoint,
  sha256,
  signCheckpoint,
  utf8,
} from '@custos/core';
import type { Row } from './harness.js';

export function auditBench(count = 1_000_000): Row[] {
  const org = digestOf('bench', 1, 'org');
  const signer = generateEd25519();
  const entries: AuditEntry[] = [];
  const checkpoints: SignedCheckpoint[] = [];
  let prev: AuditEntry | null = null;
  for (let i = 0; i < count; i++) {
    const e = appendAudit(prev, {
      at: 1_767_225_600_000 + i,
      actor: i % 2 === 0 ? 'member:requester-1/phone' : 'signer:signer-1',
      event: i % 2 === 0 ? 'intent.created' : 'signing.signed',
      subject: `intent-${i}`,
      digest: digestOf('bench', 1, i),
    });
    entries.push(e);
    if (i % 10_000 === 9_999) {
      checkpoints.push(
        signCheckpoint(signer.secretKey, {
          v: 1,
          org,
          signer: 'signer-1',
          seq: i,
          head: auditEntryDigest(e),
          at: e.at,
        }),
      );
    }
    prev = e;
  }

  // Ceiling: sha256 of the same domain-prefixed canonical bytes, precomputed outside the timing.
  const bytes = entries.map((e) => utf8(`custos/audit/v1\n${canonicalize(e)}`));
  let t = performance.now();
  for (const b of bytes) sha256(b);
  const shaSeconds = (performance.now() - t) / 1000;

  const verifier = new AuditChainVerifier({
    checkpoints,
    signerKeys: new Map([['signer-1', signer.publicKey]]),
    expectedOrg: org,
  });
  t = performance.now();
  for (const e of entries) {
    const r = verifier.push(e);
    if (r !== null) throw new Error(`bench log did not verify at ${r.ok ? '?' : r.firstBadSeq}`);
  }
  const done = verifier.finish();
  const verifySeconds = (performance.now() - t) / 1000;
  if (!done.ok || done.entries !== count) throw new Error('bench log did not verify');

  return [
    {
      suite: 'audit',
      figure: `verify ${count.toLocaleString('en-US')} entries`,
      value: count / verifySeconds,
      unit: 'entries/s',
    },
    {
      suite: 'audit',
      figure: 'ceiling: sha256 of the same bytes',
      value: count / shaSeconds,
      unit: 'entries/s',
    },
    { suite: 'audit', figure: 'verify / ceiling', value: shaSeconds / verifySeconds, unit: 'ratio' },
    { suite: 'audit', figure: 'total verify time', value: verifySeconds, unit: 's' },
  ];
}
