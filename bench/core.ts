/**
 * Core benchmarks (issue 2): what one signer pays per decision, against the
 * raw cost of the signatures in it, and governance chain verification.
 *
 * - raw Ed25519 verifications per second (the primitive every check rests on),
 *   and raw Ed25519 signatures per second with OpenSSL and with noble;
 * - intent verification + policy evaluation per second, for an intent with two
 *   approvals (three signatures), and its ratio to the ceiling of raw
 *   verifications / 3: 1.0 would mean the policy engine costs nothing beyond
 *   the signatures it must check;
 * - governance chain verification from the genesis, 10,000 entries, in
 *   entries per second, and its ratio to raw verifications / 2 (each entry
 *   carries two admin signatures).
 */
import {
  type Amount,
  type Approval,
  applyGovernance,
  approvalDigest,
  digestOf,
  ED25519_BACKEND,
  evaluate,
  fromHex,
  generateEd25519,
  governanceDigest,
  type Hex,
  type Intent,
  intentDigest,
  type SignedGovernanceEntry,
  signBytes,
  signBytesNoble,
  signDigest,
  verifyEd25519,
  verifyGovernanceChain,
} from '@custos/core';
import { createOrg, DAY, propose, T0 } from '@custos/test-support/org';
import { measure, type Row } from './harness.js';

export function coreBench(): Row[] {
  const rows: Row[] = [];
  const key = generateEd25519();
  const message = fromHex(digestOf('bench', 1, { x: 1 }));
  const sig = signDigest(key.secretKey, digestOf('bench', 1, { x: 1 }));
  if (sig.kind !== 'ed25519') throw new Error('unexpected signature kind');
  const raw = measure('ed25519 verify', () => {
    if (!verifyEd25519(key.publicKey, message, sig.sig)) throw new Error('verify failed');
  });
  rows.push({
    suite: 'core',
    figure: `raw Ed25519 verify (${ED25519_BACKEND})`,
    value: raw.perSecond,
    unit: '/s',
  });
  // Signing, with each implementation: signBytes uses OpenSSL on Node (the same bytes as noble).
  const signOpenssl = measure('ed25519 sign', () => {
    signBytes(key.secretKey, message);
  });
  const signNoble = measure('ed25519 sign (noble)', () => {
    signBytesNoble(key.secretKey, message);
  });
  rows.push({
    suite: 'core',
    figure: `raw Ed25519 sign (${ED25519_BACKEND})`,
    value: signOpenssl.perSecond,
    unit: '/s',
  });
  rows.push({ suite: 'core', figure: 'raw Ed25519 sign (noble)', value: signNoble.perSecond, unit: '/s' });

  // An intent with two approvals against the fixture org's policy.
  const org = createOrg({ delayMs: DAY });
  const now = T0 + 60_000;
  const intent: Intent = {
    v: 1,
    org: org.orgId,
    wallet: org.wallet.id,
    chain: org.wallet.chain,
    asset: 'BTC',
    amount: '1000000' as Amount,
    to: org.address.address,
    requester: org.requester.id,
    device: org.requester.device.id,
    nonce: '00112233445566778899aabbccddeeff' as Hex,
    createdAt: now - 1000,
    expiresAt: now + 3_600_000,
  };
  const id = intentDigest(intent);
  const signed = { intent, signature: signDigest(org.requester.device.secretKey, id) };
  const approvals = org.approvers.slice(0, 2).map((p) => {
    const a: Approval = {
      v: 1,
      intent: id,
      approver: p.id,
      device: p.device.id,
      decision: 'approve',
      at: now - 500,
      expiresAt: now + 3_600_000,
    };
    return { approval: a, signature: signDigest(p.device.secretKey, approvalDigest(a)) };
  });
  const decision = evaluate({ state: org.state, intent: signed, approvals, ledger: [], now });
  if (decision.kind !== 'allow') throw new Error(`bench intent not allowed: ${JSON.stringify(decision)}`);
  const evalM = measure('evaluate', () => {
    evaluate({ state: org.state, intent: signed, approvals, ledger: [], now });
  });
  const ceiling = raw.perSecond / 3;
  rows.push({
    suite: 'core',
    figure: 'intent verify + policy evaluation',
    value: evalM.perSecond,
    unit: '/s',
  });
  rows.push({ suite: 'core', figure: 'ceiling: raw verify / 3 signatures', value: ceiling, unit: '/s' });
  rows.push({
    suite: 'core',
    figure: 'evaluation / ceiling',
    value: evalM.perSecond / ceiling,
    unit: 'ratio',
  });

  // Governance: 10,000 entries, each signed by two admins.
  const count = 10_000;
  const entries: { signed: SignedGovernanceEntry; seenAt: number }[] = [
    { signed: org.genesis, seenAt: org.seenAt },
  ];
  let state = org.state;
  const signers = org.admins.slice(0, 2);
  for (let i = 1; i <= count; i++) {
    const signedEntry =
      i % 2 === 1
        ? propose(
            state,
            'address.add',
            {
              id: `dest-${i}`,
              chain: 'bitcoin:regtest',
              address: `bcrt1qbench${i}` as never,
              label: `Bench ${i}`,
            },
            signers,
          )
        : propose(state, 'address.remove', { id: `dest-${i - 1}` }, signers);
    const next = applyGovernance(state, signedEntry, T0 + i);
    if (!next.ok) throw new Error(`bench chain entry ${i} refused: ${next.message}`);
    state = next.value;
    entries.push({ signed: signedEntry, seenAt: T0 + i });
  }
  const t = performance.now();
  const verified = verifyGovernanceChain(org.orgId, entries);
  const seconds = (performance.now() - t) / 1000;
  if (!verified.ok || verified.value.head !== governanceDigest(entries[count]!.signed.entry)) {
    throw new Error('bench chain did not verify');
  }
  rows.push({
    suite: 'core',
    figure: `governance chain verify (${count} entries)`,
    value: count / seconds,
    unit: 'entries/s',
  });
  rows.push({ suite: 'core', figure: 'governance chain: total time', value: seconds, unit: 's' });
  rows.push({
    suite: 'core',
    figure: 'governance / ceiling (raw verify / 2)',
    value: count / seconds / (raw.perSecond / 2),
    unit: 'ratio',
  });
  return rows;
}
