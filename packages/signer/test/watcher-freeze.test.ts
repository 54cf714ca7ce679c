/**
 * Freezes a signer pulls from its watchers (issue 12): applied only when they
 * would be applied from the coordinator. A freeze at this signer's head + 1,
 * signed by the governed watcher, freezes it (every later job FROZEN, nothing
 * signed, the decision recorded); anything else a watcher, or whoever
 * answers in its place, serves changes nothing: an entry that is not a
 * freeze, a freeze signed by a member who is neither admin nor watcher, a
 * forged signature, a freeze for another head, malformed input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildEntry, type SignedGovernanceEntry } from '@custos/core';
import { MemorySource } from '@custos/test-support/memory-source';
import { propose, signBy } from '@custos/test-support/org';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Signer } from '../src/signer.js';
import { SignerStore } from '../src/store.js';

let dir: string;
let store: SignerStore;
let world: World;
let signer: Signer;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'custos-watcher-freeze-'));
  store = new SignerStore(join(dir, 'signer.db'));
  world = makeWorld();
  signer = Signer.init(
    {
      id: 'signer-1',
      identitySecret: world.org.signer.secretKey,
      key: world.keys[0]!,
      pinnedGenesis: world.org.orgId,
      chains: ['bitcoin:regtest'],
      store,
      clock: () => world.clock.now,
    },
    world.org.genesis,
  );
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const reason = { reason: 'watcher-1: unexplained spend ab12' };

/** Nothing changed: the signer still signs a withdrawal. */
async function stillSigns(): Promise<void> {
  const w = world.withdrawal(10_000_000n);
  const result = await signer.handle(w.job, new MemorySource(world.governance));
  expect(result.receipt.outcome).toBe('signed');
}

describe('signer: freezes pulled from a watcher', () => {
  it('a freeze at its head + 1 signed by the governed watcher freezes it: the next job is refused FROZEN, nothing signed, recorded', async () => {
    const freeze = propose(world.org.state, 'freeze', reason, [world.org.watcher]);
    expect(signer.applyWatcherFreeze(freeze)).toEqual({ outcome: 'applied' });
    expect(signer.applyWatcherFreeze(freeze)).toEqual({ outcome: 'known' });
    expect(signer.governance.frozen?.reason).toBe(reason.reason);
    const w = world.withdrawal(10_000_000n);
    // The job names the head before the freeze: a coordinator that withholds it.
    const result = await signer.handle(w.job, new MemorySource(world.governance));
    expect(result.receipt).toMatchObject({ outcome: 'refused', code: 'FROZEN' });
    expect(result.psbt).toBeUndefined();
    expect(store.ledgerCount()).toBe(0);
    expect(store.decisions().at(-1)).toMatchObject({ job: w.job.id });
    // Stored as this signer's own chain: it survives a restart.
    expect(store.governance().map((g) => g.signed.entry.kind)).toEqual(['genesis', 'freeze']);
  });

  it('refuses a freeze signed by a member who is neither admin nor watcher (GOVERNANCE_SIGNATURE_INVALID), and stays unfrozen', async () => {
    const freeze = propose(world.org.state, 'freeze', reason, [world.org.requester]);
    expect(signer.applyWatcherFreeze(freeze)).toMatchObject({
      outcome: 'refused',
      code: 'GOVERNANCE_SIGNATURE_INVALID',
    });
    expect(signer.governance.frozen).toBeNull();
    await stillSigns();
  });

  it("refuses a forged watcher signature (another key under the watcher's name)", async () => {
    const entry = buildEntry(world.org.state, 'freeze', reason, world.clock.now);
    const byWatcher = signBy(entry, [world.org.watcher]);
    const byOther = signBy(entry, [world.org.requester]);
    const forged: SignedGovernanceEntry = {
      entry,
      signatures: [
        {
          ...byOther.signatures[0]!,
          member: byWatcher.signatures[0]!.member,
          device: byWatcher.signatures[0]!.device,
        },
      ],
    };
    expect(signer.applyWatcherFreeze(forged)).toMatchObject({
      outcome: 'refused',
      code: 'GOVERNANCE_SIGNATURE_INVALID',
    });
    expect(signer.governance.frozen).toBeNull();
    await stillSigns();
  });

  it('ignores anything but a freeze, a freeze for another head, and malformed input', async () => {
    const unfreeze = propose(world.org.state, 'unfreeze', reason, world.org.admins.slice(0, 2));
    expect(signer.applyWatcherFreeze(unfreeze)).toMatchObject({
      outcome: 'refused',
      code: 'GOVERNANCE_INVALID',
    });
    const entry = buildEntry(world.org.state, 'freeze', reason, world.clock.now);
    const elsewhere = signBy({ ...entry, seq: 5 }, [world.org.watcher]);
    expect(signer.applyWatcherFreeze(elsewhere)).toEqual({ outcome: 'stale' });
    const unlinked = signBy({ ...entry, prev: 'ab'.repeat(32) as typeof entry.prev }, [world.org.watcher]);
    expect(signer.applyWatcherFreeze(unlinked)).toEqual({ outcome: 'stale' });
    for (const junk of [null, 42, 'freeze', { entry: {} }, []]) {
      expect(signer.applyWatcherFreeze(junk)).toMatchObject({ outcome: 'refused' });
    }
    expect(signer.governance.frozen).toBeNull();
    expect(signer.governance.seq).toBe(0);
    await stillSigns();
  });
});
