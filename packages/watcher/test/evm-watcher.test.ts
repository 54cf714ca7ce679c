/**
 * The watcher's EVM half end to end (issue 12), on a Hardhat chain with
 * Safe 1.4.1: the real coordinator (HTTP API and pipeline, SQLite), two REAL
 * `custos signer run` processes owning a 2-of-3 Safe with a backup key, and
 * the watcher (governed member watcher-1, role `watcher`) reading the chain
 * through its own viem client and the coordinator over signed HTTP.
 *
 * - A Safe withdrawal through Custos is matched by its safeTxHash: no freeze.
 * - A Safe transaction executed outside Custos with two owner keys (signer-1's
 *   EVM key from its keystore and the backup key): the watcher freezes; the
 *   latency from the execution mined to the freeze applied on the
 *   coordinator is measured; a later withdrawal is refused FROZEN.
 * - An owner added and the threshold changed behind Custos's back: the
 *   execution and the state difference (owners) are each unexplained.
 * - A pending execTransaction (automine off) signed by two owner keys is
 *   frozen before it is mined; one whose signatures are by keys that own
 *   nothing (calldata anyone can send) raises nothing; once mined, the
 *   execution is judged once.
 * - The singleton in slot 0 swapped with no transaction of the Safe at all
 *   (Bybit's end state, written here with hardhat_setStorageAt): the state
 *   difference (singleton) is unexplained.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Digest, type EvmSafeWallet, intentDigest, type Millis, memoryDeviceSigner } from '@custos/core';
import {
  buildTransferSafeTx,
  encodeExecTransaction,
  evmAddressOf,
  packSafeSignatures,
  SAFE_ABI,
  type SafeTx,
  safeTxHash,
  signSafeTxHash,
} from '@custos/evm';
import { evmClient } from '@custos/evm/state';
import { unlockKeystore } from '@custos/signer/keystore';
import { type EvmChain, startEvmChain } from '@custos/test-support/evm-chain';
import { ETH, type EvmWorld, makeEvmWorld } from '@custos/test-support/evm-world';
import {
  initKeystore,
  type KeystoreInfo,
  PASSWORD,
  type RunningSigner,
  runSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { type Address, encodeFunctionData, getAddress, hexToBytes, parseAbi, zeroAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../../server/src/app.js';
import { openDatabase } from '../../server/src/db/connect.js';
import { Store } from '../../server/src/db/repository.js';
import { initOrganization } from '../../server/src/governance-view.js';
import { createPipeline } from '../../server/src/pipeline.js';
import { Client } from '../../server/test/api/support/client.js';
import { RecordingNotifier, TEST_LIMITS } from '../../server/test/api/support/harness.js';
import { storeAudit, storeGovernance, waitFor } from '../../server/test/pipeline/support/harness.js';
import { CoordinatorClient } from '../src/coordinator.js';
import { SafeFollower } from '../src/evm-follow.js';
import { type SpendRecord, Watcher } from '../src/watcher.js';

const OWNER_ABI = parseAbi([
  'function addOwnerWithThreshold(address owner, uint256 _threshold)',
  'function changeThreshold(uint256 _threshold)',
]);

let chain: EvmChain;
let dir: string;
let keystores: KeystoreInfo[];
let world: EvmWorld;
let store: Store;
let url: string;
let watcher: Watcher;
const logs: { event: string; fields: Record<string, unknown> }[] = [];
const stops: (() => Promise<void>)[] = [];
const controller = new AbortController();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-evm-watch-'));
  [chain, ...keystores] = await Promise.all([
    startEvmChain(),
    initKeystore(dir, 'signer-1'),
    initKeystore(dir, 'signer-2'),
  ]);
  const evmAddresses = keystores.map((k) => {
    const file = JSON.parse(readFileSync(k.path, 'utf8')) as { public: { evmAddress: string } };
    return getAddress(file.public.evmAddress);
  });
  world = await makeEvmWorld(
    chain,
    keystores.map((k, i) => ({ id: k.id, identityKey: k.identityKey, evmAddress: evmAddresses[i]! })),
    { fund: { eth: 10n * ETH, tokens: 1_000_000_000n }, daily: { eth: 5n * ETH, usdt: 1_000_000_000n } },
  );
  const db = await openDatabase({ sqlitePath: join(dir, 'coordinator.db') });
  stops.push(() => db.close());
  store = new Store(db);
  await initOrganization(store, world.genesis, { now: Date.now });
  const notifier = new RecordingNotifier();
  const pipeline = createPipeline(
    {
      store,
      governance: storeGovernance(store, world.orgId),
      audit: storeAudit(store),
      notifier,
      clock: Date.now,
    },
    {
      rpc: { url: 'http://127.0.0.1:9' },
      pollMs: 100,
      repairMs: 200,
      checkpointIntervalMs: 0,
      evm: { [String(chain.chainId)]: { rpcUrl: chain.rpcUrl, executorKey: chain.accounts[4]!.privateKey } },
    },
  );
  const coordinator = await createCoordinator({
    store,
    pipeline,
    notifier,
    clock: Date.now,
    limits: TEST_LIMITS,
  });
  url = await coordinator.app.listen({ host: '127.0.0.1', port: 0 });
  pipeline.start();
  stops.push(async () => {
    await coordinator.close();
    await pipeline.stop();
  });

  const signers: RunningSigner[] = [];
  for (const k of keystores) {
    const config = join(dir, `${k.id}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        id: k.id,
        coordinatorUrl: url,
        genesis: world.orgId,
        keystore: `${k.id}.key`,
        database: `${k.id}.db`,
        chains: ['bitcoin:regtest'],
        waitMs: 200,
        evm: { [String(chain.chainId)]: { rpcUrl: chain.rpcUrl } },
      }),
    );
    signers.push(runSigner(config));
  }
  stops.push(async () => {
    for (const s of signers) s.child.kill('SIGTERM');
    await Promise.all(signers.map((s) => s.exited));
  });
  await Promise.all(signers.map((s) => waitForOutput(s, 'signer.started')));

  // The watcher: its own key (member watcher-1), its own client on the chain, no Bitcoin node.
  const w = world.org.watcher;
  const device = memoryDeviceSigner({ member: w.id, device: w.device.id, secretKey: w.device.secretKey });
  watcher = new Watcher({
    coordinator: new CoordinatorClient(url, device),
    device,
    pinnedGenesis: world.orgId,
    evm: [
      new SafeFollower({
        chainId: chain.chainId,
        client: evmClient(chain.rpcUrl),
        startBlock: Number(await chain.publicClient.getBlockNumber()),
      }),
    ],
    recordPath: join(dir, 'watcher-record.json'),
    log: (event, fields) => logs.push({ event, fields }),
  });
  const running = watcher.run(controller.signal, 50);
  stops.push(async () => {
    controller.abort();
    await running;
  });
}, 180_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  await chain?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const as = () => {
  const p = world.org.requester;
  return new Client(
    { baseUrl: url },
    { keyId: `member:${p.id}/${p.device.id}`, secretKey: p.device.secretKey },
    () => Date.now() as Millis,
  );
};

async function withdraw(amount: bigint): Promise<Digest> {
  const signed = world.intent({ asset: 'eth', amount });
  const created = await as().post('/v1/intents', signed);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = intentDigest(signed.intent);
  for (const [k, a] of world.approve(signed).entries()) {
    const p = world.org.approvers[k]!;
    const client = new Client(
      { baseUrl: url },
      { keyId: `member:${p.id}/${p.device.id}`, secretKey: p.device.secretKey },
      () => Date.now() as Millis,
    );
    const res = await client.post(`/v1/intents/${id}/approvals`, a);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  return id;
}

/** Signer-1's EVM key (from its keystore) and the backup key sign and execute `tx`: Custos is not involved. */
async function executeOutside(safe: Address, tx: Omit<SafeTx, 'nonce'>): Promise<string> {
  const k1 = await unlockKeystore(keystores[0]!.path, PASSWORD);
  const nonce = await chain.publicClient.readContract({
    address: safe,
    abi: SAFE_ABI,
    functionName: 'nonce',
  });
  const full: SafeTx = { ...tx, nonce };
  const hash = safeTxHash(safe, chain.chainId, full);
  const sigs = packSafeSignatures(
    [k1.evmSecret as Uint8Array, hexToBytes(chain.accounts[3]!.privateKey)].map((k) => ({
      owner: evmAddressOf(k),
      signature: signSafeTxHash(hash, k),
    })),
  );
  await chain.send(chain.accounts[5]!.address, safe, encodeExecTransaction(tx, sigs));
  return hash.slice(2);
}

/** A call of the Safe on itself (owner management), as a SafeTx without its nonce. */
function selfCall(safe: Address, data: `0x${string}`): Omit<SafeTx, 'nonce'> {
  return {
    to: safe,
    value: 0n,
    data,
    operation: 0,
    safeTxGas: 0n,
    baseGas: 0n,
    gasPrice: 0n,
    gasToken: zeroAddress,
    refundReceiver: zeroAddress,
  };
}

const frozenAt = async () => (await storeGovernance(store, world.orgId).current()).frozen;
const unexplainedOf = (key: string) =>
  waitFor(`the watcher's judgement of ${key}`, async () =>
    watcher.unexplained().find((r: SpendRecord) => r.txid === key),
  );

describe('custos watch on an EVM chain', () => {
  let safe: EvmSafeWallet;
  let safe2: EvmSafeWallet;

  it('matches a Safe withdrawal through Custos by its safeTxHash: recorded, no freeze', async () => {
    safe = world.safes['eth-safe'];
    safe2 = world.safes['eth-safe-2'];
    const id = await withdraw(ETH / 10n);
    const view = await waitFor(
      `intent ${id} confirmed`,
      async () => {
        const v = (await as().get(`/v1/intents/${id}`)).body as { status: string; txid: string | null };
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
        return v.status === 'confirmed' ? v : undefined;
      },
      60_000,
    );
    const matched = await waitFor('the watcher matched the execution', async () =>
      watcher.matched().find((r) => r.txid === view.txid),
    );
    expect(matched).toMatchObject({ intent: id, safe: { kind: 'execution', wallet: 'eth-safe' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(watcher.unexplained()).toEqual([]);
    expect(logs.some((l) => l.event === 'watcher.alert')).toBe(false);
    expect(await frozenAt()).toBeNull();
  }, 90_000);

  it('freezes on a Safe transaction executed outside Custos with two owner keys; a later withdrawal is refused FROZEN', async () => {
    const t0 = performance.now();
    const key = await executeOutside(safe.address as Address, {
      ...buildTransferSafeTx({ asset: { kind: 'native' }, to: world.payee, amount: 1n, nonce: 0n }),
    });
    const frozen = await waitFor(
      'the freeze applied on the coordinator',
      async () => (await frozenAt()) ?? undefined,
    );
    const latencyMs = performance.now() - t0;
    console.log(
      `EVM watcher: outside execution mined → freeze applied on the coordinator in ${latencyMs.toFixed(0)} ms`,
    );
    expect(latencyMs).toBeLessThan(5000);
    expect(frozen.reason).toContain(key);
    expect(frozen.by).toBe(world.org.watcher.id);
    const record = await unexplainedOf(key);
    expect(record.safe).toMatchObject({ kind: 'execution', wallet: 'eth-safe', success: true });
    expect(record.freeze?.delivered).toBe(true);
    expect(watcher.freezes().length).toBe(1);
    // No state difference: a transfer changes no owner, threshold or singleton.
    expect(watcher.unexplained().filter((r) => r.safe?.kind === 'state')).toEqual([]);

    const signed = world.intent({ asset: 'eth', amount: 1000n });
    const refused = await as().post('/v1/intents', signed);
    expect(refused.status).not.toBe(201);
    expect((refused.body as { error: { code: string } }).error.code).toBe('FROZEN');
    const audit = await store.audit.range(0, 100_000);
    expect(audit.some((e) => e.event === 'frozen')).toBe(true);
  }, 60_000);

  it('freezes on an owner added and a threshold changed behind Custos: the execution and the owners difference are unexplained', async () => {
    const target = safe2.address as Address;
    const intruder = getAddress(chain.accounts[5]!.address);
    const added = await executeOutside(
      target,
      selfCall(
        target,
        encodeFunctionData({ abi: OWNER_ABI, functionName: 'addOwnerWithThreshold', args: [intruder, 1n] }),
      ),
    );
    expect(await unexplainedOf(added)).toMatchObject({ safe: { kind: 'execution', wallet: 'eth-safe-2' } });
    const drift = await waitFor('the owners difference', async () =>
      watcher.unexplained().find((r) => r.safe?.kind === 'state' && r.safe.wallet === 'eth-safe-2'),
    );
    expect(drift.safe).toMatchObject({ field: 'owners', chain: `eip155:${chain.chainId}` });
    expect(drift.safe?.transaction).toBeDefined();
    expect(drift.freeze?.delivered).toBe(true);
    const frozen = await frozenAt();
    expect(frozen).not.toBeNull();

    // Reported once: blocks that do not change the state again add no finding.
    await chain.send(chain.accounts[0]!.address, chain.accounts[7]!.address, '0x', 1n);
    await new Promise((r) => setTimeout(r, 300));
    expect(watcher.unexplained().filter((r) => r.safe?.kind === 'state')).toHaveLength(1);

    // The threshold changed again (the intruder alone now meets the threshold of 1): a new difference.
    const k5 = hexToBytes(chain.accounts[5]!.privateKey);
    const nonce = await chain.publicClient.readContract({
      address: target,
      abi: SAFE_ABI,
      functionName: 'nonce',
    });
    const tx = selfCall(
      target,
      encodeFunctionData({ abi: OWNER_ABI, functionName: 'changeThreshold', args: [2n] }),
    );
    const hash = safeTxHash(target, chain.chainId, { ...tx, nonce });
    const sigs = packSafeSignatures([{ owner: evmAddressOf(k5), signature: signSafeTxHash(hash, k5) }]);
    await chain.send(chain.accounts[5]!.address, target, encodeExecTransaction(tx, sigs));
    await unexplainedOf(hash.slice(2));
    await waitFor('the second state difference', async () =>
      watcher.unexplained().filter((r) => r.safe?.kind === 'state').length === 2 ? true : undefined,
    );
  }, 60_000);

  it('judges a pending execTransaction before it is mined (automine off): signed by two owner keys, frozen; signatures that would not execute, ignored', async () => {
    const target = safe.address as Address;
    const rpc = (method: string, params: unknown[]) =>
      chain.publicClient.request({ method: method as 'eth_chainId', params: params as never });
    const before = watcher.unexplained().length;
    const freezes = watcher.freezes().length;
    await rpc('evm_setAutomine', [false]);
    try {
      const nonce = await chain.publicClient.readContract({
        address: target,
        abi: SAFE_ABI,
        functionName: 'nonce',
      });
      const tx = buildTransferSafeTx({ asset: { kind: 'native' }, to: world.payee, amount: 2n, nonce });
      const hash = safeTxHash(target, chain.chainId, tx);
      const attacker = chain.accounts[5]!;
      // Calldata anyone can send: two signatures by keys that own nothing. It would revert (GS026).
      const k6 = hexToBytes(chain.accounts[6]!.privateKey);
      const k7 = hexToBytes(chain.accounts[7]!.privateKey);
      const bogus = packSafeSignatures(
        [k6, k7].map((k) => ({ owner: evmAddressOf(k), signature: signSafeTxHash(hash, k) })),
      );
      await rpc('eth_sendTransaction', [
        { from: attacker.address, to: target, data: encodeExecTransaction(tx, bogus), gas: '0x100000' },
      ]);
      await new Promise((r) => setTimeout(r, 500));
      expect(watcher.unexplained().length).toBe(before);

      const k1 = await unlockKeystore(keystores[0]!.path, PASSWORD);
      const real = packSafeSignatures(
        [k1.evmSecret as Uint8Array, hexToBytes(chain.accounts[3]!.privateKey)].map((k) => ({
          owner: evmAddressOf(k),
          signature: signSafeTxHash(hash, k),
        })),
      );
      const t0 = performance.now();
      const sent = (await rpc('eth_sendTransaction', [
        { from: attacker.address, to: target, data: encodeExecTransaction(tx, real), gas: '0x100000' },
      ])) as `0x${string}`;
      const record = await unexplainedOf(hash.slice(2));
      const latencyMs = performance.now() - t0;
      console.log(`EVM watcher: pending execution sent → freeze delivered in ${latencyMs.toFixed(0)} ms`);
      expect(record.safe).toMatchObject({
        kind: 'execution',
        pending: true,
        transaction: sent,
        wallet: 'eth-safe',
      });
      expect(record.freeze?.delivered).toBe(true);
      expect(watcher.freezes().length).toBe(freezes + 1);
      // Judged while still pending: not mined yet.
      expect(await chain.publicClient.getTransactionReceipt({ hash: sent }).catch(() => null)).toBeNull();
    } finally {
      await rpc('evm_setAutomine', [true]);
      await rpc('evm_mine', []);
    }
    // Mined now (ExecutionSuccess with the same hash): judged once, no second freeze.
    await chain.send(chain.accounts[0]!.address, chain.accounts[7]!.address, '0x', 1n);
    await new Promise((r) => setTimeout(r, 500));
    expect(watcher.unexplained().length).toBe(before + 1);
    expect(watcher.freezes().length).toBe(freezes + 1);
  }, 60_000);

  it.each([
    ['the Bybit backdoor', 'eth-safe', () => chain.backdoor],
    ['an address with no code', 'eth-safe-2', () => chain.accounts[5]!.address],
  ] as const)(
    'freezes on a singleton swapped for %s with no transaction of the Safe (Bybit): the singleton difference is unexplained',
    async (_what, walletId, singleton) => {
      const target = world.safes[walletId].address as Address;
      const before = watcher.unexplained().length;
      await chain.publicClient.request({
        method: 'hardhat_setStorageAt' as 'eth_chainId',
        params: [target, '0x0', `0x${'0'.repeat(24)}${singleton().slice(2).toLowerCase()}`] as never,
      });
      // Storage set without a block: mine one so the watcher reads past it.
      await chain.send(chain.accounts[0]!.address, chain.accounts[7]!.address, '0x', 1n);
      const drift = await waitFor('the singleton difference', async () =>
        watcher
          .unexplained()
          .find((r, i) => i >= before && r.safe?.kind === 'state' && r.safe.wallet === walletId),
      );
      expect(drift.safe).toMatchObject({ field: 'singleton' });
      expect(drift.safe?.transaction).toBeUndefined();
      expect(drift.freeze?.delivered).toBe(true);
      expect(logs.some((l) => l.event === 'watcher.alert' && l.fields.code === 'SAFE_STATE_MISMATCH')).toBe(
        true,
      );
    },
    60_000,
  );
});
