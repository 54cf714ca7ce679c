/**
 * Issue 9, flow steps 1-5 for a Safe, end to end: intents and approvals
 * through the real HTTP API (RFC 9421-signed requests over a socket), the
 * real coordinator pipeline building the SafeTx and allocating its nonce in
 * the database, two REAL `custos signer run` processes (each reading the
 * Safe's state from its own node) signing it, the coordinator checking and
 * packing their owner signatures and executing execTransaction from an
 * executor account that owns nothing, on a Hardhat chain with Safe 1.4.1.
 * Balances move by exactly the amounts, for ETH and for the 6-decimal token;
 * the audit log carries the same events as for Bitcoin; GET /v1/wallets
 * shows the Safe's balances. On SQLite and on PostgreSQL.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Digest, type EvmSafeWallet, intentDigest, type Millis } from '@custos/core';
import {
  buildTransferSafeTx,
  encodeExecTransaction,
  evmAddressOf,
  packSafeSignatures,
  SAFE_ABI,
  safeTxHash,
  signSafeTxHash,
} from '@custos/evm';
import { unlockKeystore } from '@custos/signer/keystore';
import { type EvmChain, startEvmChain, TOKEN_ABI } from '@custos/test-support/evm-chain';
import { ETH, type EvmWorld, makeEvmWorld } from '@custos/test-support/evm-world';
import type { Org, Person } from '@custos/test-support/org';
import {
  initKeystore,
  type KeystoreInfo,
  PASSWORD,
  type RunningSigner,
  runSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { type Address, getAddress, hexToBytes } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import type { Store } from '../../src/db/repository.js';
import { initOrganization } from '../../src/governance-view.js';
import { createPipeline } from '../../src/pipeline.js';
import { Client, type Target } from '../api/support/client.js';
import { RecordingNotifier, TEST_LIMITS } from '../api/support/harness.js';
import { useBackends } from '../db/backends.js';
import { storeAudit, storeGovernance, useCleanups, waitFor } from './support/harness.js';

const fromHexKey = (k: `0x${string}`): Uint8Array => hexToBytes(k);
const { backends } = useBackends();
const cleanups = useCleanups();

let chain: EvmChain;
let dir: string;
let keystores: KeystoreInfo[];
let evmAddresses: Address[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-evm-e2e-'));
  [chain, ...keystores] = await Promise.all([
    startEvmChain(),
    initKeystore(dir, 'signer-1'),
    initKeystore(dir, 'signer-2'),
  ]);
  evmAddresses = keystores.map((k) => {
    const file = JSON.parse(readFileSync(k.path, 'utf8')) as { public: { evmAddress?: string } };
    if (file.public.evmAddress === undefined) throw new Error(`${k.path} has no EVM key`);
    return getAddress(file.public.evmAddress);
  });
}, 120_000);

afterAll(async () => {
  await chain?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Stand {
  readonly world: EvmWorld;
  readonly notifier: RecordingNotifier;
  readonly signers: readonly RunningSigner[];
  readonly org: Org;
  readonly orgId: Digest;
  readonly safe: EvmSafeWallet;
  readonly payee: Address;
  readonly url: string;
  as(p: Person): Client;
}

/** A 2-of-3 Safe owned by the two signer processes' keys and a backup key, its genesis, the coordinator, the signers. */
async function stand(store: Store, name: string): Promise<Stand> {
  const world = await makeEvmWorld(
    chain,
    keystores.map((k, i) => ({ id: k.id, identityKey: k.identityKey, evmAddress: evmAddresses[i]! })),
    { fund: { eth: 10n * ETH, tokens: 1_000_000_000n }, daily: { eth: 5n * ETH, usdt: 1_000_000_000n } },
  );
  const { org, orgId, genesis, payee } = world;
  const safe = world.safes['eth-safe'];
  await initOrganization(store, genesis, { now: Date.now });

  const governance = storeGovernance(store, orgId);
  const notifier = new RecordingNotifier();
  const pipeline = createPipeline(
    { store, governance, audit: storeAudit(store), notifier, clock: Date.now },
    {
      // No Bitcoin wallet here: the Bitcoin node is never reached for a Safe.
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
  const url = await coordinator.app.listen({ host: '127.0.0.1', port: 0 });
  pipeline.start();
  cleanups.push(async () => {
    await coordinator.close();
    await pipeline.stop();
  });

  const signers: RunningSigner[] = [];
  for (const k of keystores) {
    const config = join(dir, `${k.id}-${name}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        id: k.id,
        coordinatorUrl: url,
        genesis: orgId,
        keystore: `${k.id}.key`,
        database: `${k.id}-${name}.db`,
        chains: ['bitcoin:regtest'],
        waitMs: 200,
        // Each signer's own trusted node: here the same local chain, named by the signer's config, not the coordinator.
        evm: { [String(chain.chainId)]: { rpcUrl: chain.rpcUrl } },
      }),
    );
    signers.push(runSigner(config));
  }
  cleanups.push(async () => {
    for (const s of signers) s.child.kill('SIGTERM');
    await Promise.all(signers.map((s) => s.exited));
  });
  await Promise.all(signers.map((s) => waitForOutput(s, 'signer.started')));
  const target: Target = { baseUrl: url };
  return {
    world,
    notifier,
    signers,
    org,
    orgId,
    safe,
    payee,
    url,
    as: (p) =>
      new Client(
        target,
        { keyId: `member:${p.id}/${p.device.id}`, secretKey: p.device.secretKey },
        () => Date.now() as Millis,
      ),
  };
}

const _counter = 0;

/** Signer-1's EVM key (from its keystore) and the backup key sign and execute a 1-wei transfer: Custos is not involved. */
async function executeOutside(safe: Address, to: Address): Promise<string> {
  const k1 = await unlockKeystore(keystores[0]!.path, PASSWORD);
  const tx = buildTransferSafeTx({
    asset: { kind: 'native' },
    to,
    amount: 1n,
    nonce: await chain.publicClient.readContract({ address: safe, abi: SAFE_ABI, functionName: 'nonce' }),
  });
  const hash = safeTxHash(safe, chain.chainId, tx);
  const sigs = packSafeSignatures(
    [k1.evmSecret as Uint8Array, fromHexKey(chain.accounts[3]!.privateKey)].map((k) => ({
      owner: evmAddressOf(k),
      signature: signSafeTxHash(hash, k),
    })),
  );
  await chain.send(chain.accounts[5]!.address, safe, encodeExecTransaction(tx, sigs));
  return hash;
}

/** Requests through POST /v1/intents and approves through POST /v1/intents/:id/approvals. */
async function withdraw(s: Stand, asset: 'eth' | 'usdt', amount: bigint): Promise<Digest> {
  const by = s.org.requester;
  const signed = s.world.intent({ asset, amount });
  const created = await s.as(by).post('/v1/intents', signed);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = intentDigest(signed.intent);
  for (const [k, a] of s.world.approve(signed).entries()) {
    const p = s.org.approvers[k]!;
    const res = await s.as(p).post(`/v1/intents/${id}/approvals`, a);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  return id;
}

async function confirmed(s: Stand, id: Digest): Promise<{ status: string; txid: string | null }> {
  return waitFor(
    `intent ${id} confirmed`,
    async () => {
      const res = await s.as(s.org.requester).get(`/v1/intents/${id}`);
      const view = res.body as {
        status: string;
        txid: string | null;
        statusCode: string | null;
        statusMessage: string | null;
      };
      if (['refused', 'expired', 'rejected'].includes(view.status)) {
        throw new Error(`intent ${view.status}: ${view.statusCode} ${view.statusMessage}`);
      }
      return view.status === 'confirmed' ? view : undefined;
    },
    60_000,
  );
}

const ethOf = (a: Address) => chain.publicClient.getBalance({ address: a });
const tokenOf = (a: Address) =>
  chain.publicClient.readContract({
    address: chain.token,
    abi: TOKEN_ABI,
    functionName: 'balanceOf',
    args: [a],
  });

describe.each(backends)('an EVM Safe withdrawal end to end on $name', (backend) => {
  it('executes ETH and the token through the HTTP API, the pipeline and two real signer processes, balances moving by exactly the amounts; alerts on an execution no intent proposed (NO_APPROVED_INTENT) and refuses an intent whose nonce an outside transaction used (SAFE_NONCE_REUSED)', async () => {
    const { store } = await backend.fresh();
    const s = await stand(store, backend.name);
    const safe = s.safe.address as Address;

    const ethAmount = ETH / 10n; // 0.1 ETH
    const [safeEth, payeeEth] = [await ethOf(safe), await ethOf(s.payee)];
    const ethIntent = await withdraw(s, 'eth', ethAmount);
    const first = await confirmed(s, ethIntent);
    expect(await ethOf(safe)).toBe(safeEth - ethAmount);
    expect(await ethOf(s.payee)).toBe(payeeEth + ethAmount);

    const tokenAmount = 25_500_000n; // 25.5 USDT
    const [safeTok, payeeTok, safeEthNow] = [await tokenOf(safe), await tokenOf(s.payee), await ethOf(safe)];
    const tokenIntent = await withdraw(s, 'usdt', tokenAmount);
    const second = await confirmed(s, tokenIntent);
    expect(await tokenOf(safe)).toBe(safeTok - tokenAmount);
    expect(await tokenOf(s.payee)).toBe(payeeTok + tokenAmount);
    expect(await ethOf(safe)).toBe(safeEthNow); // the executor paid the gas

    // Two nonces, in order, each the safeTxHash the receipts name.
    const rows = await Promise.all([store.evm.get(ethIntent), store.evm.get(tokenIntent)]);
    expect(rows.map((r) => r?.nonce)).toEqual([0n, 1n]);
    expect(first.txid).toBe(rows[0]?.safeTxHash.slice(2));
    expect(second.txid).toBe(rows[1]?.safeTxHash.slice(2));

    const audit = await store.audit.range(0, 10_000);
    for (const id of [ethIntent, tokenIntent]) {
      const events = audit.filter((e) => e.subject === id).map((e) => e.event);
      for (const event of [
        'transaction.built',
        'signing.queued',
        'signing.signed',
        'intent.signed',
        'transaction.broadcast',
        'transaction.confirmed',
      ]) {
        expect(events, `${event} of ${id}`).toContain(event);
      }
      expect(events.filter((e) => e === 'signing.signed')).toHaveLength(2);
      expect(events).not.toContain('alert');
    }

    // An owner key used outside Custos: signer-1's EVM key (from its keystore) and the backup key execute a
    // transfer no intent proposed. The coordinator sees the Safe's ExecutionSuccess and raises the alert.
    const outsideHash = await executeOutside(safe, s.payee);
    const alert = await waitFor('the alert on an execution no intent proposed', async () =>
      s.notifier.of('alert').find((a) => a.code === 'NO_APPROVED_INTENT'),
    );
    expect(alert).toMatchObject({ subject: 'wallet:eth-safe', severity: 'critical' });
    expect(String(alert.message)).toContain(outsideHash);

    // A Safe nonce Custos allocated, used by a transaction Custos did not execute: the signers are paused
    // (SIGSTOP) once the proposal is built, the outside keys use its nonce, the coordinator refuses the
    // intent SAFE_NONCE_REUSED with a critical alert, and nothing of it executes.
    for (const p of s.signers) p.child.kill('SIGSTOP');
    let taken: Digest;
    try {
      taken = await withdraw(s, 'eth', 1000n);
      const row = await waitFor('the proposal built', async () => (await store.evm.get(taken)) ?? undefined);
      expect(row.nonce).toBe(3n); // 0 and 1 executed by Custos, 2 by the outside keys above
      await executeOutside(safe, s.payee);
      const refused = await waitFor('the intent refused', async () => {
        const v = (await s.as(s.org.requester).get(`/v1/intents/${taken}`)).body as {
          status: string;
          statusCode: string | null;
        };
        return v.status === 'refused' ? v : undefined;
      });
      expect(refused.statusCode).toBe('SAFE_NONCE_REUSED');
      expect(s.notifier.of('alert').find((a) => a.code === 'SAFE_NONCE_REUSED')).toMatchObject({
        subject: taken,
        severity: 'critical',
      });
    } finally {
      for (const p of s.signers) p.child.kill('SIGCONT');
    }

    const wallets = await s.as(s.org.requester).get('/v1/wallets');
    const listed = (
      wallets.body as {
        wallets: { id: string; balance: string; balances: { asset: string; balance: string }[] }[];
      }
    ).wallets;
    const w = listed.find((x) => x.id === 'eth-safe');
    expect(w?.balance).toBe((await ethOf(safe)).toString());
    expect(w?.balances).toEqual([
      { asset: 'eth', balance: (await ethOf(safe)).toString() },
      { asset: 'usdt', balance: (await tokenOf(safe)).toString() },
    ]);
  }, 120_000);
});
