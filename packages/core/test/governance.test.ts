/**
 * Governance: the genesis, the chain, the signatures each entry needs and the
 * delays loosening changes wait out (docs/architecture.md "Governance entry"; THREATS 4,
 * 5, 9, 10, 12, 18, 19, 22). Real Ed25519 keys and signatures throughout.
 */

import {
  COLD_STORAGE,
  createOrg,
  DAY,
  defaultPolicy,
  EXCHANGE_DEPOSIT,
  HOUR,
  makePerson,
  type Person,
  propose,
  signBy,
  T0,
  unwrap,
} from '@custos/test-support/org';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../src/bytes.js';
import { CustosError, type ErrorCode, type Refusal, type Result } from '../src/errors.js';
import {
  type AppliedEntry,
  applyGovernance,
  buildEntry,
  buildGenesis,
  createGenesisState,
  detectEquivocation,
  type EntrySigner,
  signEntry,
  signGovernanceEntry,
  verifyGovernanceChain,
} from '../src/governance.js';
import { ed25519PublicKey, generateEd25519 } from '../src/keys.js';
import {
  type Device,
  type GenesisBody,
  type GovernanceEntry,
  governanceDigest,
  type Policy,
  type SignedGovernanceEntry,
} from '../src/objects.js';
import { ZERO_DIGEST } from '../src/primitives.js';
import {
  addressStatus,
  effectiveDelay,
  effectiveQuorum,
  hasRole,
  lookupDevice,
  policiesInForce,
} from '../src/state.js';
import type { Address, Amount, Digest, Hex } from '../src/types.js';

const org = createOrg();
const [a1, a2, a3] = org.admins as [Person, Person, Person];
const approver1 = org.approvers[0] as Person;

function refusal(result: Result<unknown>): Refusal {
  expect(result.ok).toBe(false);
  return result as Refusal;
}

function expectCode(result: Result<unknown>, code: ErrorCode): Refusal {
  const r = refusal(result);
  expect(r.code, r.message).toBe(code);
  return r;
}

/** A new address-book entry, a typical loosening change. */
function newAddress(id = 'exchange', address: Address = EXCHANGE_DEPOSIT) {
  return { id, chain: 'bitcoin:regtest', address, label: `Address ${id}` };
}

/** A key that is in no state: what someone writing rows into the database holds. */
function rogueSigner(member: string, device: string): EntrySigner {
  return { member, device, secretKey: generateEd25519().secretKey };
}

function genesisWith(body: GenesisBody, by: readonly Person[] = org.admins): SignedGovernanceEntry {
  return signBy(buildGenesis(body, T0), by);
}

describe('genesis', () => {
  it('a genesis signed by a quorum of its own admins verifies, and everything in it is active at once', () => {
    const s = unwrap(createGenesisState(org.genesis, T0, org.orgId));
    expect(s.org).toBe(org.orgId);
    expect(s.org).toBe(governanceDigest(org.genesis.entry));
    expect(s.seq).toBe(0);
    expect(s.head).toBe(org.orgId);
    expect(s.name).toBe('Acme Custody');
    expect(hasRole(s, 'admin-1', 'admin', T0)).toBe(true);
    expect(hasRole(s, 'approver-1', 'approver', T0)).toBe(true);
    expect(hasRole(s, 'watcher-1', 'watcher', T0)).toBe(true);
    expect(effectiveQuorum(s, T0)).toBe(2);
    expect(effectiveDelay(s, T0)).toBe(DAY);
    expect(policiesInForce(s, T0)).toEqual([org.policy]);
    expect(addressStatus(s, 'bitcoin:regtest', COLD_STORAGE, T0)).toEqual({
      status: 'active',
      entry: org.address,
    });
    expect(s.wallets.get(org.wallet.id)).toEqual(org.wallet);
    expect(s.signers.get('signer-1')).toEqual(org.signer.record);
    expect(lookupDevice(s, 'requester-1', 'requester-1-d1', T0).ok).toBe(true);
    // The genesis state cannot be frozen.
    expect(s.frozen).toBeNull();
  });

  it('a genesis that is not the pinned one is WRONG_ORG', () => {
    const other = createOrg({ name: 'Other Custody' });
    expect(other.orgId).not.toBe(org.orgId);
    expectCode(createGenesisState(other.genesis, T0, org.orgId), 'WRONG_ORG');
    const r = expectCode(
      verifyGovernanceChain(org.orgId, [{ signed: other.genesis, seenAt: T0 }]),
      'WRONG_ORG',
    );
    expect(r.details?.seq).toBe(0);
  });

  it('a genesis signed by fewer admins than its own quorum is QUORUM_NOT_MET', () => {
    expectCode(createGenesisState(genesisWith(org.body, [a1]), T0), 'QUORUM_NOT_MET');
  });

  it('a genesis signed by a member it lists without the admin role is GOVERNANCE_SIGNATURE_INVALID', () => {
    const r = expectCode(
      createGenesisState(genesisWith(org.body, [a1, a2, approver1]), T0),
      'GOVERNANCE_SIGNATURE_INVALID',
    );
    expect(r.details?.reason).toBe('NOT_AUTHORIZED');
  });

  it('a genesis signed by a key it does not list is GOVERNANCE_SIGNATURE_INVALID', () => {
    const entry = buildGenesis(org.body, T0);
    const signed = signGovernanceEntry(entry, [a1.device.signer, rogueSigner('admin-2', 'admin-2-d1')]);
    expectCode(createGenesisState(signed, T0), 'GOVERNANCE_SIGNATURE_INVALID');
  });

  const sameKey = a1.member.devices[0] as Device;
  const inconsistent: [string, (b: GenesisBody) => GenesisBody][] = [
    ['a member listed twice', (b) => ({ ...b, members: [...b.members, { ...a1.member, name: 'Twin' }] })],
    [
      'one member listing a device id twice',
      (b) => ({
        ...b,
        members: b.members.map((m) =>
          m.id === 'approver-1'
            ? {
                ...m,
                devices: [
                  ...m.devices,
                  { ...(m.devices[0] as Device), publicKey: generateEd25519().publicKey },
                ],
              }
            : m,
        ),
      }),
    ],
    [
      'one key registered for two members',
      (b) => ({
        ...b,
        members: b.members.map((m) =>
          m.id === 'approver-1' ? { ...m, devices: [{ ...sameKey, id: 'approver-1-d9' }] } : m,
        ),
      }),
    ],
    ['a quorum above the number of admins', (b) => ({ ...b, quorum: 4 })],
    [
      'a rule id listed twice',
      (b) => ({ ...b, policy: { ...b.policy, rules: [...b.policy.rules, ...b.policy.rules] } }),
    ],
    [
      'a limit id listed twice',
      (b) => ({ ...b, policy: { ...b.policy, limits: [...b.policy.limits, ...b.policy.limits] } }),
    ],
    ['a rule naming an unknown wallet', (b) => ({ ...b, policy: defaultPolicy('no-such-wallet') })],
    [
      'an approval group naming an unknown member',
      (b) => ({
        ...b,
        policy: {
          ...b.policy,
          rules: [
            {
              id: 'named',
              match: { destination: { kind: 'any' } },
              action: 'allow',
              approvals: [{ m: 1, members: ['nobody'] }],
            },
          ],
        },
      }),
    ],
    [
      'an address-book id listed twice',
      (b) => ({ ...b, addresses: [org.address, { ...org.address, address: EXCHANGE_DEPOSIT }] }),
    ],
    [
      'one destination under two ids',
      (b) => ({ ...b, addresses: [org.address, { ...org.address, id: 'again' }] }),
    ],
    [
      'a wallet id listed twice',
      (b) => ({ ...b, wallets: [org.wallet, { ...org.wallet, descriptor: 'wsh(other)' }] }),
    ],
    [
      'one descriptor under two wallet ids',
      (b) => ({ ...b, wallets: [org.wallet, { ...org.wallet, id: 'btc-copy' }] }),
    ],
    [
      'a signer id listed twice',
      (b) => ({
        ...b,
        signers: [org.signer.record, { ...org.signer.record, publicKey: a1.device.publicKey }],
      }),
    ],
  ];
  it.each(inconsistent)('a genesis with %s is GOVERNANCE_INVALID', (_name, change) => {
    const r = expectCode(createGenesisState(genesisWith(change(org.body)), T0), 'GOVERNANCE_INVALID');
    expect(r.message).toMatch(/^genesis: /);
  });

  it('a chain must start with a genesis: a later entry cannot', () => {
    const later = propose(org.state, 'freeze', { reason: 'x' }, [a1]);
    expectCode(createGenesisState(later, T0), 'GOVERNANCE_CHAIN_BROKEN');
    expectCode(verifyGovernanceChain(org.orgId, []), 'GOVERNANCE_CHAIN_BROKEN');
  });

  it('a malformed entry is refused with its decoding code, not thrown', () => {
    const bad = {
      ...org.genesis,
      entry: { ...org.genesis.entry, extra: 1 },
    } as unknown as SignedGovernanceEntry;
    expectCode(createGenesisState(bad, T0), 'UNKNOWN_FIELD');
    const later = propose(org.state, 'freeze', { reason: 'x' }, [a1]);
    const badSig = {
      ...later,
      signatures: [{ ...later.signatures[0], signature: { kind: 'ed25519', sig: 'zz' } }],
    } as unknown as SignedGovernanceEntry;
    expectCode(applyGovernance(org.state, badSig, T0), 'INVALID_VALUE');
  });

  it('a time that is not an integer is a caller mistake and throws', () => {
    expect(() => createGenesisState(org.genesis, Number.NaN)).toThrow(CustosError);
    expect(() => applyGovernance(org.state, propose(org.state, 'freeze', { reason: '' }, [a1]), -1)).toThrow(
      CustosError,
    );
  });
});

describe('signatures (THREATS 9, 12, 4, 5)', () => {
  const seenAt = T0 + HOUR;

  it('THREATS 9: an entry signed by a non-admin key is GOVERNANCE_SIGNATURE_INVALID', () => {
    const rogue = { id: 'approver-1-d2', kind: 'ed25519' as const, publicKey: generateEd25519().publicKey };
    const signed = propose(org.state, 'device.add', { member: 'approver-1', device: rogue }, [a1, approver1]);
    const r = expectCode(applyGovernance(org.state, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details).toMatchObject({ index: 1, member: 'approver-1', reason: 'NOT_AUTHORIZED' });
  });

  it('THREATS 9: a row written into the database with a key not in the state is GOVERNANCE_SIGNATURE_INVALID', () => {
    const entry = buildEntry(org.state, 'address.add', newAddress(), T0);
    const cases: [EntrySigner, string][] = [
      [rogueSigner('admin-2', 'admin-2-laptop'), 'UNKNOWN_DEVICE'],
      [rogueSigner('mallory', 'mallory-d1'), 'NOT_A_MEMBER'],
      // Claims a real admin device but is signed by another key.
      [rogueSigner('admin-2', 'admin-2-d1'), 'Ed25519 signature does not verify'],
    ];
    for (const [rogue, reason] of cases) {
      const signed = signGovernanceEntry(entry, [a1.device.signer, rogue]);
      const r = expectCode(applyGovernance(org.state, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
      expect(r.details?.reason).toBe(reason);
    }
  });

  it('THREATS 9: one admin where the quorum is 2 is QUORUM_NOT_MET', () => {
    const signed = propose(org.state, 'address.add', newAddress(), [a1]);
    const result = applyGovernance(org.state, signed, seenAt);
    const r = expectCode(result, 'QUORUM_NOT_MET');
    expect(r.details).toEqual({ needed: 2, got: 1 });
    // Typed for the coordinator that collects signatures: how many it needs and has.
    expect(result.ok ? undefined : result.quorum).toEqual({ needed: 2, got: 1 });
  });

  it('THREATS 9: lowering the quorum by an entry short of the quorum or with a forged row is refused', () => {
    const entry = buildEntry(org.state, 'quorum.set', { quorum: 1, delayMs: 0 }, T0);
    expectCode(
      applyGovernance(org.state, signGovernanceEntry(entry, [a1.device.signer]), seenAt),
      'QUORUM_NOT_MET',
    );
    const forged = signGovernanceEntry(entry, [a1.device.signer, rogueSigner('admin-2', 'admin-2-d1')]);
    const refused = applyGovernance(org.state, forged, seenAt);
    expectCode(refused, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(refused.ok ? undefined : refused.quorum).toBeUndefined();
    // Nothing changed: the quorum is still 2, now and later.
    expect(effectiveQuorum(org.state, seenAt + 365 * DAY)).toBe(2);
  });

  it('THREATS 9: a forged signature next to a valid quorum refuses the entry rather than being skipped', () => {
    const entry = buildEntry(org.state, 'address.add', newAddress(), T0);
    const signed = signGovernanceEntry(entry, [
      a1.device.signer,
      a2.device.signer,
      rogueSigner('admin-3', 'admin-3-d1'),
    ]);
    const r = expectCode(applyGovernance(org.state, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.index).toBe(2);
  });

  it('THREATS 9: an entry edited after it was signed is GOVERNANCE_SIGNATURE_INVALID', () => {
    const signed = propose(org.state, 'address.add', newAddress(), [a1, a2]);
    const edited = {
      ...signed,
      entry: { ...signed.entry, body: newAddress('exchange', COLD_STORAGE.replace('q', 'p') as Address) },
    } as SignedGovernanceEntry;
    expectCode(applyGovernance(org.state, edited, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
  });

  it('one device signing twice is refused', () => {
    const signed = propose(org.state, 'address.add', newAddress(), [a1, a1, a2]);
    expectCode(applyGovernance(org.state, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
  });

  it('THREATS 12: one admin signing with two devices counts once', () => {
    const two = createOrg({ adminDevices: 2 });
    const [b1, b2] = two.admins as [Person, Person];
    const entry = buildEntry(two.state, 'address.add', newAddress(), T0);
    const byOne = signBy(entry, b1.devices);
    const r = expectCode(applyGovernance(two.state, byOne, seenAt), 'QUORUM_NOT_MET');
    expect(r.details).toEqual({ needed: 2, got: 1 });
    const byTwo = signBy(entry, [...b1.devices, b2.device]);
    expect(unwrap(applyGovernance(two.state, byTwo, seenAt)).seq).toBe(1);
  });

  it("THREATS 4: a revoked device's signature is refused", () => {
    const revoked = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'device.revoke', { member: 'admin-1', device: 'admin-1-d1' }, [a2, a3]),
        seenAt,
      ),
    );
    expect(revoked.members.get('admin-1')?.devices.get('admin-1-d1')).toMatchObject({ revoked: true });
    const signed = propose(revoked, 'address.add', newAddress(), [a1, a2]);
    const r = expectCode(applyGovernance(revoked, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.reason).toBe('DEVICE_REVOKED');
  });

  it("THREATS 5: a removed member's signature is refused", () => {
    const removed = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'member.remove', { member: 'admin-3' }, [a1, a2]),
        seenAt,
      ),
    );
    expect(removed.members.has('admin-3')).toBe(false);
    const signed = propose(removed, 'address.add', newAddress(), [a3, a1]);
    const r = expectCode(applyGovernance(removed, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.reason).toBe('NOT_A_MEMBER');
  });
});

describe('THREATS 10: equivocation', () => {
  it('two different entries for one seq are GOVERNANCE_EQUIVOCATION; the same entry again is not', () => {
    const e1 = buildEntry(org.state, 'address.add', newAddress(), T0);
    const e1b = buildEntry(org.state, 'address.add', newAddress('exchange-2'), T0);
    const known = new Map<number, Digest>([
      [0, org.orgId],
      [1, governanceDigest(e1)],
    ]);
    expect(detectEquivocation(known, e1)).toBeNull();
    const r = detectEquivocation(known, e1b);
    expect(r?.code).toBe('GOVERNANCE_EQUIVOCATION');
    expect(r?.details).toEqual({ seq: 1, known: governanceDigest(e1), received: governanceDigest(e1b) });
    // A seq not seen before is no equivocation.
    const s1 = unwrap(applyGovernance(org.state, signBy(e1, [a1, a2]), T0));
    expect(detectEquivocation(known, buildEntry(s1, 'freeze', { reason: '' }, T0))).toBeNull();
  });
});

describe('the chain', () => {
  const e1 = propose(org.state, 'address.add', newAddress(), [a1, a2]);
  const s1 = unwrap(applyGovernance(org.state, e1, T0 + HOUR));
  const e2 = propose(s1, 'signer.add', { id: 'signer-2', publicKey: a3.device.publicKey }, [a1, a2]);

  it('a seq gap is GOVERNANCE_CHAIN_BROKEN', () => {
    const r = expectCode(applyGovernance(org.state, e2, T0 + HOUR), 'GOVERNANCE_CHAIN_BROKEN');
    expect(r.details).toMatchObject({ expectedSeq: 1, receivedSeq: 2 });
  });

  it('a wrong prev is GOVERNANCE_CHAIN_BROKEN', () => {
    const entry = { ...e1.entry, prev: governanceDigest(e2.entry) } as GovernanceEntry;
    expectCode(applyGovernance(org.state, signBy(entry, [a1, a2]), T0), 'GOVERNANCE_CHAIN_BROKEN');
  });

  it('a replayed old entry is GOVERNANCE_CHAIN_BROKEN', () => {
    expectCode(applyGovernance(s1, e1, T0 + 2 * HOUR), 'GOVERNANCE_CHAIN_BROKEN');
  });

  it('a second genesis is GOVERNANCE_CHAIN_BROKEN', () => {
    expectCode(applyGovernance(org.state, org.genesis, T0), 'GOVERNANCE_CHAIN_BROKEN');
  });

  it('an entry of another organization is WRONG_ORG, even signed by the same keys', () => {
    const other = createOrg({ name: 'Sister Custody' });
    const signed = propose(other.state, 'address.add', newAddress(), [a1, a2]);
    expect(unwrap(applyGovernance(other.state, signed, T0)).seq).toBe(1);
    expectCode(applyGovernance(org.state, signed, T0), 'WRONG_ORG');
  });

  it('verifyGovernanceChain names the first bad entry', () => {
    const forged = {
      ...e2,
      signatures: [e2.signatures[0], signEntry(e2.entry, rogueSigner('admin-2', 'admin-2-d1'))],
    } as SignedGovernanceEntry;
    const chain = verifyGovernanceChain(org.orgId, [
      { signed: org.genesis, seenAt: T0 },
      { signed: e1, seenAt: T0 + HOUR },
      { signed: forged, seenAt: T0 + 2 * HOUR },
    ]);
    const r = expectCode(chain, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.seq).toBe(2);
    // Typed for the coordinator that reports which stored entry is bad.
    expect(chain.ok ? undefined : chain.seq).toBe(2);
    expect(r.message).toMatch(/^entry 2: /);
  });

  it('verifyGovernanceChain gives the state of applying each entry in turn', () => {
    const chain: AppliedEntry[] = [
      { signed: org.genesis, seenAt: T0 },
      { signed: e1, seenAt: T0 + HOUR },
    ];
    let state = s1;
    const step = (signed: SignedGovernanceEntry, seenAt: number) => {
      chain.push({ signed, seenAt });
      state = unwrap(applyGovernance(state, signed, seenAt));
    };
    step(e2, T0 + 2 * HOUR);
    step(propose(state, 'policy.set', { policy: { ...org.policy, feeCaps: [] } }, [a1, a3]), T0 + 3 * HOUR);
    step(
      propose(state, 'role.set', { member: 'approver-1', roles: ['approver', 'admin'] }, [a2, a3]),
      T0 + 4 * HOUR,
    );
    step(propose(state, 'freeze', { reason: 'drill' }, [org.watcher]), T0 + 5 * HOUR);
    step(propose(state, 'quorum.set', { quorum: 3, delayMs: HOUR }, [a1, a2]), T0 + 2 * DAY);
    step(propose(state, 'unfreeze', { reason: 'drill over' }, [a1, a2, approver1]), T0 + 3 * DAY);
    step(propose(state, 'address.remove', { id: 'cold-storage' }, [a1, a2, a3]), T0 + 3 * DAY);
    const verified = unwrap(verifyGovernanceChain(org.orgId, chain));
    expect(verified).toEqual(state);
    expect(verified.seq).toBe(8);
  });

  it('applyGovernance leaves the state it was given unchanged', () => {
    const before = structuredClone(org.state);
    const changes = [
      propose(org.state, 'member.remove', { member: 'approver-2' }, [a1, a2]),
      propose(org.state, 'device.revoke', { member: 'approver-1', device: 'approver-1-d1' }, [a1, a2]),
      propose(org.state, 'role.set', { member: 'approver-1', roles: [] }, [a1, a2]),
      propose(org.state, 'address.remove', { id: 'cold-storage' }, [a1, a2]),
      propose(
        org.state,
        'wallet.add',
        { ...org.wallet, id: 'btc-2', descriptor: 'wsh(sortedmulti(2,other))' },
        [a1, a2],
      ),
      propose(org.state, 'signer.remove', { id: 'signer-1' }, [a1, a2]),
      propose(org.state, 'quorum.set', { quorum: 3, delayMs: 0 }, [a1, a2]),
      propose(org.state, 'freeze', { reason: 'x' }, [a1]),
    ];
    for (const signed of changes) unwrap(applyGovernance(org.state, signed, T0 + DAY));
    expect(org.state).toEqual(before);
  });

  it('a clock that stepped back does not make an entry older than the one before it', () => {
    const r = unwrap(
      verifyGovernanceChain(org.orgId, [
        { signed: org.genesis, seenAt: T0 },
        { signed: e1, seenAt: T0 + 10 * HOUR },
        {
          signed: propose(s1, 'address.add', newAddress('late', 'bcrt1-late' as Address), [a1, a2]),
          seenAt: T0 + 5 * HOUR,
        },
      ]),
    );
    expect(addressStatus(r, 'bitcoin:regtest', 'bcrt1-late', T0 + 5 * HOUR + DAY).status).toBe('pending');
    expect(addressStatus(r, 'bitcoin:regtest', 'bcrt1-late', T0 + 10 * HOUR + DAY).status).toBe('active');
  });
});

describe('THREATS 18: a new destination waits out the delay', () => {
  it('address.add with a full quorum is pending until seenAt + delay, active after', () => {
    const seenAt = T0 + HOUR;
    const s = unwrap(
      applyGovernance(org.state, propose(org.state, 'address.add', newAddress(), org.admins), seenAt),
    );
    expect(addressStatus(s, 'bitcoin:regtest', EXCHANGE_DEPOSIT, seenAt)).toMatchObject({
      status: 'pending',
      activeFrom: seenAt + DAY,
    });
    expect(addressStatus(s, 'bitcoin:regtest', EXCHANGE_DEPOSIT, seenAt + DAY - 1).status).toBe('pending');
    expect(addressStatus(s, 'bitcoin:regtest', EXCHANGE_DEPOSIT, seenAt + DAY).status).toBe('active');
  });

  it('the delay counts from when the verifier first saw the entry, not from proposedAt', () => {
    const proposedLongAgo = propose(org.state, 'address.add', newAddress(), [a1, a2], T0 - 30 * DAY);
    const seenAt = T0 + HOUR;
    const s = unwrap(applyGovernance(org.state, proposedLongAgo, seenAt));
    expect(addressStatus(s, 'bitcoin:regtest', EXCHANGE_DEPOSIT, seenAt + 1).status).toBe('pending');
  });

  it('address.remove takes effect at once', () => {
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'address.remove', { id: 'cold-storage' }, [a1, a2]),
        T0 + HOUR,
      ),
    );
    expect(addressStatus(s, 'bitcoin:regtest', COLD_STORAGE, T0 + HOUR).status).toBe('unknown');
  });
});

describe('THREATS 19: loosening the policy or the quorum waits; tightening binds at once', () => {
  const looser: Policy = {
    ...org.policy,
    limits: org.policy.limits.map((l) => ({ ...l, max: '1000000000' as Amount })),
  };

  it('policy.set: both policies bind until the delay has passed, then only the new one', () => {
    const seenAt = T0 + HOUR;
    const s = unwrap(
      applyGovernance(org.state, propose(org.state, 'policy.set', { policy: looser }, [a1, a2]), seenAt),
    );
    expect(policiesInForce(s, seenAt)).toEqual([org.policy, looser]);
    expect(policiesInForce(s, seenAt + DAY - 1)).toEqual([org.policy, looser]);
    expect(policiesInForce(s, seenAt + DAY)).toEqual([looser]);
  });

  it('quorum.set lowering: the old quorum stays in force until the delay has passed', () => {
    const seenAt = T0 + HOUR;
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'quorum.set', { quorum: 1, delayMs: DAY }, [a1, a2]),
        seenAt,
      ),
    );
    expect(effectiveQuorum(s, seenAt)).toBe(2);
    expect(effectiveQuorum(s, seenAt + DAY - 1)).toBe(2);
    expect(effectiveQuorum(s, seenAt + DAY)).toBe(1);
    const alone = propose(s, 'address.add', newAddress(), [a1]);
    expectCode(applyGovernance(s, alone, seenAt + HOUR), 'QUORUM_NOT_MET');
    expect(unwrap(applyGovernance(s, alone, seenAt + DAY)).seq).toBe(2);
  });

  it('quorum.set raising binds at once', () => {
    const seenAt = T0 + HOUR;
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'quorum.set', { quorum: 3, delayMs: DAY }, [a1, a2]),
        seenAt,
      ),
    );
    expect(effectiveQuorum(s, seenAt)).toBe(3);
    expectCode(
      applyGovernance(s, propose(s, 'address.add', newAddress(), [a1, a2]), seenAt),
      'QUORUM_NOT_MET',
    );
    expect(
      unwrap(applyGovernance(s, propose(s, 'address.add', newAddress(), [a1, a2, a3]), seenAt)).seq,
    ).toBe(2);
  });

  it('a shorter delay itself waits out the old delay', () => {
    const seenAt = T0 + HOUR;
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'quorum.set', { quorum: 2, delayMs: 0 }, [a1, a2]),
        seenAt,
      ),
    );
    expect(effectiveDelay(s, seenAt)).toBe(DAY);
    const soon = unwrap(applyGovernance(s, propose(s, 'address.add', newAddress(), [a1, a2]), seenAt + HOUR));
    expect(addressStatus(soon, 'bitcoin:regtest', EXCHANGE_DEPOSIT, seenAt + 2 * HOUR).status).toBe(
      'pending',
    );
    const later = seenAt + DAY;
    const after = unwrap(applyGovernance(s, propose(s, 'address.add', newAddress(), [a1, a2]), later));
    expect(addressStatus(after, 'bitcoin:regtest', EXCHANGE_DEPOSIT, later).status).toBe('active');
    // Settings that can no longer bind are pruned.
    expect(after.quorum).toHaveLength(1);
    expect(after.delayMs).toEqual([{ value: 0, activeFrom: later }]);
  });
});

describe('roles', () => {
  const seenAt = T0 + HOUR;

  it('a role grant waits out the delay: a new admin cannot sign before it has passed', () => {
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'role.set', { member: 'approver-1', roles: ['approver', 'admin'] }, [a1, a2]),
        seenAt,
      ),
    );
    expect(hasRole(s, 'approver-1', 'approver', seenAt)).toBe(true); // kept role keeps its time
    expect(hasRole(s, 'approver-1', 'admin', seenAt + DAY - 1)).toBe(false);
    expect(hasRole(s, 'approver-1', 'admin', seenAt + DAY)).toBe(true);
    const signed = propose(s, 'address.add', newAddress(), [approver1, a1]);
    const r = expectCode(applyGovernance(s, signed, seenAt + HOUR), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.reason).toBe('NOT_AUTHORIZED');
    expect(unwrap(applyGovernance(s, signed, seenAt + DAY)).seq).toBe(2);
  });

  it('a role removal takes effect at once', () => {
    const s = unwrap(
      applyGovernance(
        org.state,
        propose(org.state, 'role.set', { member: 'admin-3', roles: [] }, [a1, a2]),
        seenAt,
      ),
    );
    expect(hasRole(s, 'admin-3', 'admin', seenAt)).toBe(false);
    expectCode(
      applyGovernance(s, propose(s, 'address.add', newAddress(), [a1, a3]), seenAt),
      'GOVERNANCE_SIGNATURE_INVALID',
    );
  });

  it("member.add: the new member's devices and roles count only after the delay", () => {
    const newcomer = makePerson('custos-test', 'approver-9', ['approver']);
    const s = unwrap(
      applyGovernance(org.state, propose(org.state, 'member.add', newcomer.member, [a1, a2]), seenAt),
    );
    expect(lookupDevice(s, 'approver-9', 'approver-9-d1', seenAt)).toMatchObject({
      ok: false,
      code: 'DEVICE_NOT_ACTIVE',
    });
    expect(lookupDevice(s, 'approver-9', 'approver-9-d1', seenAt + DAY).ok).toBe(true);
    expect(hasRole(s, 'approver-9', 'approver', seenAt)).toBe(false);
    expect(hasRole(s, 'approver-9', 'approver', seenAt + DAY)).toBe(true);
  });
});

describe('THREATS 22: freeze and unfreeze', () => {
  const seenAt = T0 + HOUR;
  const freeze = (by: readonly Person[]) =>
    applyGovernance(org.state, propose(org.state, 'freeze', { reason: 'suspicious login' }, by), seenAt);

  it('one admin can freeze', () => {
    expect(unwrap(freeze([a1])).frozen).toEqual({ seq: 1, by: 'admin-1', reason: 'suspicious login' });
  });

  it('the watcher can freeze', () => {
    expect(unwrap(freeze([org.watcher])).frozen).toEqual({
      seq: 1,
      by: 'watcher-1',
      reason: 'suspicious login',
    });
  });

  it('a requester cannot freeze', () => {
    const r = expectCode(freeze([org.requester]), 'GOVERNANCE_SIGNATURE_INVALID');
    expect(r.details?.reason).toBe('NOT_AUTHORIZED');
  });

  it('the watcher can sign nothing but a freeze', () => {
    const signed = propose(org.state, 'address.add', newAddress(), [a1, org.watcher]);
    expectCode(applyGovernance(org.state, signed, seenAt), 'GOVERNANCE_SIGNATURE_INVALID');
  });

  it('unfreeze by one admin is QUORUM_NOT_MET; by the quorum it unfreezes', () => {
    const frozen = unwrap(freeze([org.watcher]));
    expectCode(
      applyGovernance(frozen, propose(frozen, 'unfreeze', { reason: 'ok' }, [a1]), seenAt),
      'QUORUM_NOT_MET',
    );
    const thawed = unwrap(
      applyGovernance(frozen, propose(frozen, 'unfreeze', { reason: 'ok' }, [a1, a2]), seenAt),
    );
    expect(thawed.frozen).toBeNull();
  });

  it('a second freeze keeps the first record; an unfreeze when not frozen is accepted (it clears signers own freezes)', () => {
    const frozen = unwrap(freeze([org.watcher]));
    const again = unwrap(
      applyGovernance(frozen, propose(frozen, 'freeze', { reason: 'again' }, [a2]), seenAt),
    );
    expect(again.frozen).toEqual({ seq: 1, by: 'watcher-1', reason: 'suspicious login' });
    expect(again.seq).toBe(2);
    const lifted = unwrap(
      applyGovernance(org.state, propose(org.state, 'unfreeze', { reason: 'x' }, [a1, a2]), seenAt),
    );
    expect(lifted.frozen).toBeNull();
    expectCode(
      applyGovernance(org.state, propose(org.state, 'unfreeze', { reason: 'x' }, [a1]), seenAt),
      'QUORUM_NOT_MET',
    );
  });
});

describe('changes that do not fit the state are GOVERNANCE_INVALID', () => {
  const s = org.state;
  const device = (id: string, publicKey: Hex) => ({ id, kind: 'ed25519' as const, publicKey });
  const freshKey = () => ed25519PublicKey(generateEd25519().secretKey);
  const cases: [string, SignedGovernanceEntry][] = [
    ['removing an unknown member', propose(s, 'member.remove', { member: 'nobody' }, [a1, a2])],
    ['adding an existing member', propose(s, 'member.add', { ...approver1.member, devices: [] }, [a1, a2])],
    [
      "adding a member with another member's key",
      propose(
        s,
        'member.add',
        { id: 'new', name: 'New', roles: [], devices: [device('d', a1.device.publicKey)] },
        [a1, a2],
      ),
    ],
    [
      'revoking an unknown device',
      propose(s, 'device.revoke', { member: 'approver-1', device: 'nope' }, [a1, a2]),
    ],
    [
      'revoking a device of an unknown member',
      propose(s, 'device.revoke', { member: 'nobody', device: 'd' }, [a1, a2]),
    ],
    [
      'adding a device id the member has',
      propose(s, 'device.add', { member: 'approver-1', device: device('approver-1-d1', freshKey()) }, [
        a1,
        a2,
      ]),
    ],
    [
      "adding a device with another member's key",
      propose(s, 'device.add', { member: 'approver-1', device: device('x', a2.device.publicKey) }, [a1, a2]),
    ],
    [
      'adding a device to an unknown member',
      propose(s, 'device.add', { member: 'nobody', device: device('x', freshKey()) }, [a1, a2]),
    ],
    [
      'setting the roles of an unknown member',
      propose(s, 'role.set', { member: 'nobody', roles: [] }, [a1, a2]),
    ],
    ['adding an existing address-book id', propose(s, 'address.add', newAddress('cold-storage'), [a1, a2])],
    [
      'adding a destination already in the book',
      propose(s, 'address.add', newAddress('again', COLD_STORAGE), [a1, a2]),
    ],
    ['removing an unknown address-book entry', propose(s, 'address.remove', { id: 'nope' }, [a1, a2])],
    [
      'adding an existing wallet id',
      propose(s, 'wallet.add', { ...org.wallet, descriptor: 'wsh(x)' }, [a1, a2]),
    ],
    [
      'adding a wallet over an existing descriptor',
      propose(s, 'wallet.add', { ...org.wallet, id: 'btc-2' }, [a1, a2]),
    ],
    [
      'adding an existing signer id',
      propose(s, 'signer.add', { id: 'signer-1', publicKey: freshKey() }, [a1, a2]),
    ],
    [
      'adding a signer with an existing key',
      propose(s, 'signer.add', { id: 'signer-2', publicKey: org.signer.record.publicKey }, [a1, a2]),
    ],
    ['removing an unknown signer', propose(s, 'signer.remove', { id: 'nope' }, [a1, a2])],
    [
      'a policy naming an unknown wallet',
      propose(s, 'policy.set', { policy: defaultPolicy('nope') }, [a1, a2]),
    ],
    [
      'a policy with an empty amount range',
      propose(
        s,
        'policy.set',
        {
          policy: {
            ...org.policy,
            rules: [
              {
                id: 'r',
                match: { destination: { kind: 'any' }, minAmount: '10' as Amount, maxAmount: '9' as Amount },
                action: 'deny',
              },
            ],
          },
        },
        [a1, a2],
      ),
    ],
    ['a quorum above the number of admins', propose(s, 'quorum.set', { quorum: 4, delayMs: DAY }, [a1, a2])],
  ];
  it.each(cases)('%s', (_name, signed) => {
    expectCode(applyGovernance(s, signed, T0 + HOUR), 'GOVERNANCE_INVALID');
  });

  it('removing admins so that the quorum can no longer be met is refused', () => {
    const t = T0 + HOUR;
    const without3 = unwrap(
      applyGovernance(s, propose(s, 'member.remove', { member: 'admin-3' }, [a1, a2]), t),
    );
    const attempts = [
      propose(without3, 'member.remove', { member: 'admin-2' }, [a1, a2]),
      propose(without3, 'role.set', { member: 'admin-2', roles: ['approver'] }, [a1, a2]),
      propose(without3, 'device.revoke', { member: 'admin-2', device: 'admin-2-d1' }, [a1, a2]),
    ];
    for (const signed of attempts) {
      const r = expectCode(applyGovernance(without3, signed, t), 'GOVERNANCE_INVALID');
      expect(r.details).toEqual({ admins: 1, quorum: 2 });
    }
  });
});

describe('builders', () => {
  it('buildEntry follows the state; a bad body is a caller mistake and throws', () => {
    const e = buildEntry(org.state, 'freeze', { reason: 'x' }, T0);
    expect(e).toMatchObject({ v: 1, org: org.orgId, seq: 1, prev: org.orgId, kind: 'freeze' });
    expect(() => buildEntry(org.state, 'freeze', { reason: 'x', extra: 1 } as never, T0)).toThrow(
      CustosError,
    );
    expect(buildGenesis(org.body, T0)).toMatchObject({ seq: 0, org: ZERO_DIGEST, prev: ZERO_DIGEST });
  });
});

describe('property: a chain verifies exactly when every entry carries the signatures it needs', () => {
  const p = createOrg({ seed: 'property', adminDevices: 2 });
  const [p1, p2, p3] = p.admins as [Person, Person, Person];
  type Who = { signer: EntrySigner; member: string; kind: 'admin' | 'watcher' | 'other' | 'forged' };
  const pool: Who[] = [
    { signer: (p1.devices[0] as Person['device']).signer, member: p1.id, kind: 'admin' },
    { signer: (p1.devices[1] as Person['device']).signer, member: p1.id, kind: 'admin' },
    { signer: p2.device.signer, member: p2.id, kind: 'admin' },
    { signer: (p3.devices[1] as Person['device']).signer, member: p3.id, kind: 'admin' },
    { signer: p.watcher.device.signer, member: p.watcher.id, kind: 'watcher' },
    { signer: p.requester.device.signer, member: p.requester.id, kind: 'other' },
    { signer: rogueSigner('admin-2', 'admin-2-d2'), member: 'admin-2', kind: 'forged' },
  ];

  const step = fc.record({
    op: fc.constantFrom('address', 'signer', 'toggle'),
    who: fc.subarray(
      pool.map((_, i) => i),
      { minLength: 1 },
    ),
    dt: fc.nat(10 * HOUR),
  });

  it('verifyGovernanceChain accepts exactly the chains in which each entry has its quorum of valid signatures', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 6 }), (steps) => {
        const chain: AppliedEntry[] = [{ signed: p.genesis, seenAt: T0 }];
        let head = p.orgId;
        let frozen = false;
        let seenAt = T0;
        let firstBad: { seq: number; code: ErrorCode } | undefined;
        for (const [i, st] of steps.entries()) {
          const seq = i + 1;
          seenAt += st.dt;
          const kind =
            st.op === 'toggle'
              ? frozen
                ? 'unfreeze'
                : 'freeze'
              : st.op === 'address'
                ? 'address.add'
                : 'signer.add';
          const body =
            kind === 'address.add'
              ? newAddress(`a${seq}`, `bcrt1-prop-${seq}` as Address)
              : kind === 'signer.add'
                ? {
                    id: `s${seq}`,
                    publicKey: toHex(sha256(new TextEncoder().encode(`signer ${seq}`))) as Hex,
                  }
                : { reason: `step ${seq}` };
          const entry = {
            v: 1,
            org: p.orgId,
            seq,
            prev: head,
            kind,
            body,
            proposedAt: T0,
          } as GovernanceEntry;
          const who = st.who.map((k) => pool[k] as Who);
          chain.push({
            signed: signGovernanceEntry(
              entry,
              who.map((w) => w.signer),
            ),
            seenAt,
          });
          head = governanceDigest(entry);
          if (kind === 'freeze' || kind === 'unfreeze') frozen = !frozen;

          // The model: which signatures this entry needs (docs/architecture.md "Governance entry").
          const isFreeze = kind === 'freeze';
          const unauthorized = who.some(
            (w) => w.kind === 'forged' || w.kind === 'other' || (w.kind === 'watcher' && !isFreeze),
          );
          const distinct = new Set(who.map((w) => w.member)).size;
          if (firstBad === undefined) {
            if (unauthorized) firstBad = { seq, code: 'GOVERNANCE_SIGNATURE_INVALID' };
            else if (distinct < (isFreeze ? 1 : 2)) firstBad = { seq, code: 'QUORUM_NOT_MET' };
          }
        }
        const result = verifyGovernanceChain(p.orgId, chain);
        if (firstBad === undefined) {
          expect(result.ok).toBe(true);
          if (result.ok) expect(result.value.seq).toBe(steps.length);
        } else {
          const r = expectCode(result, firstBad.code);
          expect(r.details?.seq).toBe(firstBad.seq);
        }
      }),
      { numRuns: 40 },
    );
  });
});
