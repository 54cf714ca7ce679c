/**
 * THREATS 28-29 (issue 9) through real signer processes: two `custos signer
 * run` processes own two seats of 2-of-3 Safes 1.4.1 on a real local chain
 * (Hardhat), which is also each signer's own trusted node. A fake
 * coordinator hands them jobs, and in the replays it is the attacker: it
 * proposes the SafeTx of Bybit (DELEGATECALL to the trojan), WazirX (a call
 * to the Safe itself), Radiant (transferOwnership of a contract the Safe
 * owns), a gas-refund theft, a second SafeTx for a nonce already signed,
 * the same SafeTx for another chain, and DMM's rewrite of the intent. Each
 * is refused with its code and a critical alert; nothing is signed (no
 * safeSignature, no ledger row, no Safe nonce used). The state attestation
 * catches Safes changed on chain behind Custos's back (owners added,
 * singleton replaced), and the signer freezes until a quorum-signed unfreeze.
 * The honest withdrawals, ETH and the token, signed by both processes,
 * execute on chain from an executor that owns nothing, and balances move by
 * exactly the amounts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Digest,
  governanceDigest,
  type Intent,
  intentDigest,
  type SignerJob,
  type SignerResult,
} from '@custos/core';
import {
  type Address,
  buildTransferSafeTx,
  encodeErc20Transfer,
  encodeExecTransaction,
  OPERATION_DELEGATECALL,
  packSafeSignatures,
  recoverSafeSigner,
  SAFE_ABI,
  type SafeTx,
  safeTxHash,
  signSafeTxHash,
  ZERO_ADDRESS,
} from '@custos/evm';
import {
  type EvmChain,
  OWNABLE_ABI,
  startEvmChain,
  TOKEN_ABI,
  TROJAN_ABI,
} from '@custos/test-support/evm-chain';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import { propose } from '@custos/test-support/org';
import {
  initKeystore,
  type KeystoreInfo,
  PASSWORD,
  type RunningSigner,
  runSigner,
  signerCli,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { encodeFunctionData, getAddress, type Hex, parseAbi } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unlockKeystore } from '../src/keystore.js';
import {
  ETH,
  type EvmWorld,
  fromJobSafeTx,
  keystoreEvmAddress,
  ledgerOf,
  makeEvmWorld,
  toJobSafeTx,
  writeEvmConfig,
} from './support/evm-stand.js';

const SAFE_ADMIN_ABI = parseAbi([
  'function changeMasterCopy(address _masterCopy)',
  'function addOwnerWithThreshold(address owner, uint256 _threshold)',
]);

let dir: string;
let chain: EvmChain;
let world: EvmWorld;
let coordinator: FakeCoordinator;
const keystores: KeystoreInfo[] = [];
const evmAddresses: Address[] = [];
const signers: RunningSigner[] = [];
let attacker: Address;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-evm-'));
  const [started, k1, k2] = await Promise.all([
    startEvmChain(),
    initKeystore(dir, 'signer-1'),
    initKeystore(dir, 'signer-2'),
  ]);
  chain = started;
  attacker = getAddress(chain.accounts[5]!.address);
  keystores.push(k1, k2);
  for (const k of keystores) evmAddresses.push(keystoreEvmAddress(k.path));
  world = await makeEvmWorld(
    chain,
    keystores.map((k, i) => ({ id: k.id, identityKey: k.identityKey, evmAddress: evmAddresses[i]! })),
  );
  coordinator = await startFakeCoordinator(new Map(keystores.map((k) => [k.id, k.identityKey])));
  coordinator.setGovernance([world.genesis]);
  for (const k of keystores) {
    const config = writeEvmConfig(dir, k.id, coordinator.url, world.orgId, {
      [String(chain.chainId)]: { rpcUrl: chain.rpcUrl },
    });
    signers.push(runSigner(config));
  }
  await Promise.all(signers.map((s) => waitForOutput(s, 'signer.started')));
}, 120_000);

afterAll(async () => {
  for (const s of signers) s.child.kill('SIGTERM');
  await Promise.all(signers.map((s) => s.exited));
  await coordinator?.close();
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Hands `jobs` to their signers and returns each one's result, by job id. */
async function run(...jobs: SignerJob[]): Promise<SignerResult[]> {
  const before = coordinator.results.length;
  for (const j of jobs) coordinator.push(j);
  const all = (await coordinator.waitForResults(before + jobs.length, 30_000)).slice(before);
  return jobs.map((j) => {
    const r = all.find((x) => x.receipt.job === j.id);
    if (r === undefined) throw new Error(`no result for ${j.id}`);
    return r;
  });
}

let jobCounter = 0;
function approvedJob(
  signer: string,
  o: { wallet?: string; asset: 'eth' | 'usdt'; amount: bigint },
  nonce: bigint,
): { job: SignerJob; digest: Digest } {
  const intent = world.intent(o);
  const job = world.job(
    `evm-job-${++jobCounter}`,
    signer,
    intent,
    world.approve(intent),
    world.proposal(intent, nonce),
  );
  return { job, digest: intentDigest(intent.intent) };
}

async function onChainNonce(safe: string): Promise<bigint> {
  return chain.publicClient.readContract({ address: safe as Address, abi: SAFE_ABI, functionName: 'nonce' });
}

function tokenBalance(owner: Address): Promise<bigint> {
  return chain.publicClient.readContract({
    address: chain.token,
    abi: TOKEN_ABI,
    functionName: 'balanceOf',
    args: [owner],
  });
}

/** The refusal every replay must end in: its code, a critical alert, no signature, no ledger row, no nonce used. */
function expectRefused(
  result: SignerResult,
  code: string,
  signer: string,
  digest: Digest,
  safeNoncesBefore: number,
) {
  expect(result.receipt.outcome).toBe('refused');
  expect(result.receipt.code).toBe(code);
  expect(result.alert).toEqual({ severity: 'critical', code });
  expect(result.safeSignature).toBeUndefined();
  expect(result.psbt).toBeUndefined();
  const ledger = ledgerOf(dir, signer, digest);
  expect(ledger.rows).toBe(0);
  expect(ledger.safeNonces).toBe(safeNoncesBefore);
}

const safe1 = () => world.safes['eth-safe'].address as Address;
const safe2 = () => world.safes['eth-safe-2'].address as Address;

describe('EVM Safe withdrawals through two signer processes (issue 9)', () => {
  it('THREATS 28: two signers sign a native ETH and a token withdrawal; the packed signatures execute on chain and balances move by exactly the amounts', async () => {
    for (const [asset, amount] of [
      ['eth', 3n * ETH],
      ['usdt', 25_000_000n],
    ] as const) {
      const nonce = await onChainNonce(safe1());
      const intent = world.intent({ asset, amount });
      const approvals = world.approve(intent);
      const proposal = world.proposal(intent, nonce);
      const results = await run(
        world.job(`ok-${asset}-1`, 'signer-1', intent, approvals, proposal),
        world.job(`ok-${asset}-2`, 'signer-2', intent, approvals, proposal),
      );
      const tx = fromJobSafeTx(proposal);
      const hash = safeTxHash(safe1(), chain.chainId, tx);
      const signatures = results.map((r, i) => {
        expect(r.receipt).toMatchObject({ outcome: 'signed', code: null, txid: hash.slice(2) });
        expect(r.alert).toBeUndefined();
        // The signature is over the hash the signer computed, by its keystore's EVM key.
        const who = recoverSafeSigner(hash, r.safeSignature as Hex);
        expect(who.ok && who.value).toBe(evmAddresses[i]);
        return { owner: evmAddresses[i]!, signature: r.safeSignature as Hex };
      });
      const payeeBefore =
        asset === 'eth'
          ? await chain.publicClient.getBalance({ address: world.payee })
          : await tokenBalance(world.payee);
      const safeBefore =
        asset === 'eth'
          ? await chain.publicClient.getBalance({ address: safe1() })
          : await tokenBalance(safe1());
      // The executor (account 4) owns nothing and only pays gas.
      await chain.send(
        chain.accounts[4]!.address,
        safe1(),
        encodeExecTransaction(tx, packSafeSignatures(signatures)),
      );
      const payeeAfter =
        asset === 'eth'
          ? await chain.publicClient.getBalance({ address: world.payee })
          : await tokenBalance(world.payee);
      const safeAfter =
        asset === 'eth'
          ? await chain.publicClient.getBalance({ address: safe1() })
          : await tokenBalance(safe1());
      expect(payeeAfter - payeeBefore).toBe(amount);
      expect(safeBefore - safeAfter).toBe(amount);
      expect(await onChainNonce(safe1())).toBe(nonce + 1n);
    }
  });

  it('THREATS 28: Bybit, a DELEGATECALL to the trojan for an approved token transfer, is refused OPERATION_FORBIDDEN', async () => {
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'usdt', amount: 1_000_000n },
      await onChainNonce(safe1()),
    );
    const bybit: SafeTx = {
      ...fromJobSafeTx(job.safeTx!),
      to: chain.trojan,
      value: 0n,
      // The trojan's transfer(address,uint256) writes its first argument into slot 0: the singleton.
      data: encodeFunctionData({ abi: TROJAN_ABI, functionName: 'transfer', args: [chain.backdoor, 0n] }),
      operation: OPERATION_DELEGATECALL,
    };
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: toJobSafeTx(safe1(), chain.chainId, bybit) });
    expectRefused(r!, 'OPERATION_FORBIDDEN', 'signer-1', digest, before);
  });

  it('THREATS 28: WazirX, a call to the Safe itself that upgrades it, is refused OPERATION_FORBIDDEN', async () => {
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'eth', amount: ETH },
      await onChainNonce(safe1()),
    );
    const wazirx: SafeTx = {
      ...fromJobSafeTx(job.safeTx!),
      to: safe1(),
      value: 0n,
      data: encodeFunctionData({
        abi: SAFE_ADMIN_ABI,
        functionName: 'changeMasterCopy',
        args: [chain.backdoor],
      }),
    };
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: toJobSafeTx(safe1(), chain.chainId, wazirx) });
    expectRefused(r!, 'OPERATION_FORBIDDEN', 'signer-1', digest, before);
  });

  it('THREATS 29: Radiant, transferOwnership of a contract the Safe owns, is refused OPERATION_FORBIDDEN', async () => {
    const ownable = (await chain.deployOwnable(safe1())) as Address;
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'usdt', amount: 1_000_000n },
      await onChainNonce(safe1()),
    );
    const radiant: SafeTx = {
      ...fromJobSafeTx(job.safeTx!),
      to: ownable,
      data: encodeFunctionData({ abi: OWNABLE_ABI, functionName: 'transferOwnership', args: [attacker] }),
    };
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: toJobSafeTx(safe1(), chain.chainId, radiant) });
    expectRefused(r!, 'OPERATION_FORBIDDEN', 'signer-1', digest, before);
  });

  it('THREATS 28: a gas-refund theft (the approved transfer, gasPrice > 0, refundReceiver the attacker) is refused OPERATION_FORBIDDEN', async () => {
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'usdt', amount: 1_000_000n },
      await onChainNonce(safe1()),
    );
    const refund: SafeTx = {
      ...fromJobSafeTx(job.safeTx!),
      safeTxGas: 100_000n,
      baseGas: 1_000_000n,
      gasPrice: 10n ** 12n,
      refundReceiver: attacker,
    };
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: toJobSafeTx(safe1(), chain.chainId, refund) });
    expectRefused(r!, 'OPERATION_FORBIDDEN', 'signer-1', digest, before);
  });

  it('THREATS 29: calldata paying another recipient than the intent names is refused CALLDATA_MISMATCH', async () => {
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'usdt', amount: 1_000_000n },
      await onChainNonce(safe1()),
    );
    const redirected: SafeTx = {
      ...fromJobSafeTx(job.safeTx!),
      data: encodeErc20Transfer(attacker, 1_000_000n),
    };
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: toJobSafeTx(safe1(), chain.chainId, redirected) });
    expectRefused(r!, 'CALLDATA_MISMATCH', 'signer-1', digest, before);
  });

  it('THREATS 28: a second SafeTx for a nonce already signed is refused SAFE_NONCE_REUSED; the same SafeTx again gets the same signature', async () => {
    const nonce = await onChainNonce(safe1());
    const first = approvedJob('signer-1', { asset: 'eth', amount: ETH / 10n }, nonce);
    const [signed] = await run(first.job);
    expect(signed!.receipt.outcome).toBe('signed');
    // The same job again (a retry): the same signature, nothing new in the ledger.
    const nonces = ledgerOf(dir, 'signer-1', first.digest).safeNonces;
    const [again] = await run(first.job);
    expect(again!.safeSignature).toBe(signed!.safeSignature);
    expect(again!.receipt.txid).toBe(signed!.receipt.txid);
    expect(ledgerOf(dir, 'signer-1', first.digest)).toEqual({ rows: 1, safeNonces: nonces });
    // Another approved intent proposed at the same, still unexecuted, nonce.
    const second = approvedJob('signer-1', { asset: 'eth', amount: ETH / 5n }, nonce);
    const [r] = await run(second.job);
    expectRefused(r!, 'SAFE_NONCE_REUSED', 'signer-1', second.digest, nonces);
  });

  it('THREATS 28: the same SafeTx for another chain id is refused WRONG_CHAIN', async () => {
    const nonce = await onChainNonce(safe1());
    const { job, digest } = approvedJob('signer-1', { asset: 'eth', amount: ETH / 10n }, nonce + 1n);
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run({ ...job, safeTx: { ...job.safeTx!, chainId: '1' } });
    expectRefused(r!, 'WRONG_CHAIN', 'signer-1', digest, before);
  });

  it('THREATS 29 (the DMM replay on a Safe): the relay rewrites the amount and destination and proposes the matching SafeTx; the intent signature fails', async () => {
    const nonce = await onChainNonce(safe1());
    const { job, digest } = approvedJob('signer-2', { asset: 'usdt', amount: 1_000_000n }, nonce);
    const rewritten = {
      ...job.intent,
      intent: { ...job.intent.intent, amount: '900000000000', to: attacker },
    };
    const tx = buildTransferSafeTx({
      asset: { kind: 'erc20', contract: chain.token },
      to: attacker,
      amount: 900_000_000_000n,
      nonce,
    });
    const before = ledgerOf(dir, 'signer-2', digest).safeNonces;
    const [r] = await run({
      ...job,
      intent: rewritten as SignerJob['intent'],
      safeTx: toJobSafeTx(safe1(), chain.chainId, tx),
    });
    expectRefused(
      r!,
      'INTENT_SIGNATURE_INVALID',
      'signer-2',
      intentDigest(rewritten.intent as Intent),
      before,
    );
    expect(ledgerOf(dir, 'signer-2', digest).rows).toBe(0);
  });
});

describe('state attestation from the signer’s own node (issue 9)', () => {
  /** Owners act behind Custos's back: the backup key and one signer's own key sign and execute directly. */
  async function behindTheBack(safe: Address, fields: Partial<SafeTx>, ownerKeyOf: number): Promise<void> {
    const unlocked = await unlockKeystore(keystores[ownerKeyOf]!.path, PASSWORD);
    const tx: SafeTx = {
      to: safe,
      value: 0n,
      data: '0x',
      operation: 0,
      safeTxGas: 0n,
      baseGas: 0n,
      gasPrice: 0n,
      gasToken: ZERO_ADDRESS,
      refundReceiver: ZERO_ADDRESS,
      nonce: await onChainNonce(safe),
      ...fields,
    };
    const hash = safeTxHash(safe, chain.chainId, tx);
    const signatures = packSafeSignatures([
      { owner: chain.accounts[3]!.address, signature: signSafeTxHash(hash, chain.accounts[3]!.privateKey) },
      { owner: evmAddresses[ownerKeyOf]!, signature: signSafeTxHash(hash, unlocked.evmSecret!) },
    ]);
    await chain.send(chain.accounts[4]!.address, safe, encodeExecTransaction(tx, signatures));
  }

  it('THREATS 28: a Safe whose owners were changed on chain is refused SAFE_STATE_MISMATCH, and the signer freezes itself until a quorum-signed unfreeze', async () => {
    await behindTheBack(
      safe1(),
      {
        data: encodeFunctionData({
          abi: SAFE_ADMIN_ABI,
          functionName: 'addOwnerWithThreshold',
          args: [attacker, 2n],
        }),
      },
      1,
    );
    const { job, digest } = approvedJob(
      'signer-1',
      { asset: 'eth', amount: ETH / 10n },
      await onChainNonce(safe1()),
    );
    const before = ledgerOf(dir, 'signer-1', digest).safeNonces;
    const [r] = await run(job);
    expectRefused(r!, 'SAFE_STATE_MISMATCH', 'signer-1', digest, before);
    expect(r!.message).toContain('owners');

    // Frozen: even an honest job for the untouched Safe is refused.
    const honest = approvedJob(
      'signer-1',
      { wallet: 'eth-safe-2', asset: 'eth', amount: ETH / 10n },
      await onChainNonce(safe2()),
    );
    const [frozen] = await run(honest.job);
    expect(frozen!.receipt.code).toBe('FROZEN');
    const status = await signerCli(['status', '--config', join(dir, 'signer-1.json'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      frozen: true,
      freeze: { code: 'SAFE_STATE_MISMATCH' },
      // Nonces 0 and 1 (executed) and 2 (signed, then used on chain by the owners behind Custos's back).
      safes: [{ chain: world.chainName, safe: safe1(), nonces: 3, highest: '2' }],
    });

    // A quorum-signed unfreeze clears it (the job that brings it fails before the chain is read).
    const unfreeze = propose(
      world.state,
      'unfreeze',
      { reason: 'Safe reviewed' },
      world.org.admins.slice(0, 2),
      Date.now(),
    );
    coordinator.setGovernance([world.genesis, unfreeze]);
    const next = approvedJob('signer-1', { asset: 'eth', amount: ETH / 10n }, 0n);
    const tampered = { ...next.job.intent, intent: { ...next.job.intent.intent, amount: '1' } as Intent };
    const [cleared] = await run({
      ...next.job,
      intent: tampered as SignerJob['intent'],
      governance: { seq: 1, digest: governanceDigest(unfreeze.entry) },
    });
    expect(cleared!.receipt.code).toBe('INTENT_SIGNATURE_INVALID');
    const after = await signerCli(['status', '--config', join(dir, 'signer-1.json'), '--json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ frozen: false });
  });

  it('THREATS 28: a Safe whose singleton was replaced on chain (Bybit’s backdoor) is refused SAFE_STATE_MISMATCH', async () => {
    await behindTheBack(
      safe2(),
      {
        to: chain.trojan,
        data: encodeFunctionData({ abi: TROJAN_ABI, functionName: 'transfer', args: [chain.backdoor, 0n] }),
        operation: OPERATION_DELEGATECALL,
      },
      0,
    );
    const nonce = await onChainNonce(safe2()).catch(() => 0n);
    const { job, digest } = approvedJob(
      'signer-2',
      { wallet: 'eth-safe-2', asset: 'eth', amount: ETH / 10n },
      nonce,
    );
    const before = ledgerOf(dir, 'signer-2', digest).safeNonces;
    const [r] = await run(job);
    expectRefused(r!, 'SAFE_STATE_MISMATCH', 'signer-2', digest, before);
    expect(r!.message).toContain('singleton');
    const status = await signerCli(['status', '--config', join(dir, 'signer-2.json'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      frozen: true,
      freeze: { code: 'SAFE_STATE_MISMATCH' },
    });
  });
});
