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
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildEntry, type SignedGovernanceEntry } from '@custos/core';
import { MemorySource } from '@custos/test-support/memory-source';
import { propose, signBy } from '@custos/test-support/org';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDaemon } from '../src/daemon.js';
import { Signer } from '../src/signer.js';
import { type JobSource, WatcherFreezeFeed } from '../src/source.js';
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

describe('signer daemon: freezes pulled between job polls', () => {
  it('an idle signer whose job poll waits 10 s pulls the watcher over HTTP every freezePollMs: frozen well within a second, a refused entry reported once', async () => {
    const forged = propose(world.org.state, 'freeze', reason, [world.org.requester]);
    const freeze = propose(world.org.state, 'freeze', reason, [world.org.watcher]);
    let served: unknown[] = [forged];
    let pulls = 0;
    const watcher = createServer((req, res) => {
      pulls++;
      res.writeHead(req.url === '/v1/freezes' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ freezes: served }));
    });
    await new Promise<void>((r) => watcher.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(watcher.address() as AddressInfo).port}`;
    // A coordinator with no jobs: each poll waits its whole 10 s.
    let polls = 0;
    const governance = new MemorySource(world.governance);
    const source: JobSource = {
      governanceEntries: (after, upto) => governance.governanceEntries(after, upto),
      nextJobs: (waitMs, signal) => {
        polls++;
        return new Promise((resolve) => {
          const t = setTimeout(() => resolve({ jobs: [], checkpoint: null }), waitMs);
          signal?.addEventListener('abort', () => {
            clearTimeout(t);
            resolve({ jobs: [], checkpoint: null });
          });
        });
      },
      submit: async () => undefined,
      submitCheckpoint: async () => undefined,
    };
    const outcomes: { seq: number; outcome: string; code?: string; at: number }[] = [];
    const controller = new AbortController();
    const running = runDaemon({
      signer,
      source,
      signal: controller.signal,
      waitMs: 10_000,
      freezes: new WatcherFreezeFeed([url]),
      freezePollMs: 100,
      onWatcherFreeze: (o) => outcomes.push({ ...o, at: performance.now() }),
    });
    try {
      // Several pulls of the forged entry: one alert.
      while (pulls < 4) await new Promise((r) => setTimeout(r, 20));
      expect(outcomes).toEqual([
        expect.objectContaining({ seq: 1, outcome: 'refused', code: 'GOVERNANCE_SIGNATURE_INVALID' }),
      ]);
      expect(signer.governance.frozen).toBeNull();
      served = [forged, freeze];
      const t = performance.now();
      while (signer.governance.frozen === null && performance.now() - t < 5_000) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(signer.governance.frozen?.reason).toBe(reason.reason);
      expect(outcomes.slice(1)).toEqual([expect.objectContaining({ seq: 1, outcome: 'applied' })]);
      expect(outcomes[1]!.at - t).toBeLessThan(1_000);
      // Still in its first job poll: the freeze did not wait for it.
      expect(polls).toBe(1);
      expect(store.governance().map((g) => g.signed.entry.kind)).toEqual(['genesis', 'freeze']);
    } finally {
      controller.abort();
      await running;
      await new Promise((r) => watcher.close(r));
    }
    expect(outcomes).toHaveLength(2);
  });
});
