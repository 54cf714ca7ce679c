/**
 * The pure EVM decision (decideEvmJob, issue 9) on every branch a process
 * test cannot reach cheaply: no trusted node, a keystore without an EVM
 * key, a key that is not the governed owner, the nonce rules (its own
 * ledger's next, the on-chain nonce, a nonce already used), one intent one
 * SafeTx, the rolling limits per asset from the signer's own ledger with
 * sums beyond 2^63, and its freeze. The governed Safe is built by the same
 * world as the process tests, on addresses given here (no chain needed).
 */
import { intentDigest, type LedgerView, type SignerJob, type SignerResult } from '@custos/core';
import {
  type Address,
  evmAddressOf,
  type ObservedSafeState,
  recoverSafeSigner,
  safeTxHash,
  ZERO_ADDRESS,
} from '@custos/evm';
import type { EvmChain } from '@custos/test-support/evm-chain';
import { getAddress, type Hex, keccak256, stringToHex } from 'viem';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Attestation, decideEvmJob, type EvmDecisionInput } from '../src/evm-decision.js';
import { ETH, type EvmWorld, fromJobSafeTx, makeEvmWorld } from './support/evm-stand.js';

const key = (label: string) => keccak256(stringToHex(`custos evm-decision ${label}`));
const SECRET_1 = key('signer-1');
const SECRET_2 = key('signer-2');
const a = (n: number) => getAddress(`0x${n.toString(16).padStart(2, '0').repeat(20)}`);

/** Enough of an EvmChain for the world to govern Safes at fixed addresses. */
function stubChain(): EvmChain {
  let safes = 0;
  const accounts = Array.from({ length: 8 }, (_, i) => ({
    privateKey: key(`acct-${i}`),
    address: evmAddressOf(key(`acct-${i}`)),
  }));
  return {
    chainId: 31337,
    accounts,
    token: a(0x7e),
    safeContracts: {
      singleton: a(0x41),
      singletonCodeHash: `0x${'1b'.repeat(32)}`,
      fallbackHandler: a(0xfd),
      proxyFactory: a(0x4e),
      multiSendCallOnly: a(0x4f),
    },
    deploySafe: async (owners: readonly Address[], threshold: number) => ({
      address: a(0x5a + safes++),
      owners,
      threshold,
      ownable: a(0x0b),
    }),
  } as unknown as EvmChain;
}

let world: EvmWorld;

beforeAll(async () => {
  world = await makeEvmWorld(stubChain(), [
    { id: 'signer-1', identityKey: '11'.repeat(32), evmAddress: evmAddressOf(SECRET_1) },
    { id: 'signer-2', identityKey: '22'.repeat(32), evmAddress: evmAddressOf(SECRET_2) },
  ]);
});

const emptyLedger: LedgerView = { sum: () => 0n, paid: () => false, recent: () => [] };

/** What an honest node reports for the governed Safe 'eth-safe' at `nonce`. */
function honestState(nonce: bigint): ObservedSafeState & { nonce: bigint } {
  const w = world.safes['eth-safe'];
  return {
    singleton: w.singleton as Address,
    singletonCodeHash: w.singletonCodeHash as Hex,
    owners: w.owners.map((o) => o.address as Address),
    threshold: 2n,
    nonce,
    modules: [],
    guard: ZERO_ADDRESS,
    fallbackHandler: w.fallbackHandler as Address,
  };
}

function input(
  o: { asset?: 'eth' | 'usdt'; amount?: bigint; nonce?: bigint } = {},
  over: Partial<EvmDecisionInput> = {},
): EvmDecisionInput {
  const intent = world.intent({ asset: o.asset ?? 'eth', amount: o.amount ?? ETH });
  const job: SignerJob = world.job(
    'job-1',
    'signer-1',
    intent,
    world.approve(intent),
    world.proposal(intent, o.nonce ?? 0n),
  );
  return {
    job,
    digest: intentDigest(intent.intent),
    state: world.state,
    now: Date.now(),
    chains: [world.chainName],
    signerId: 'signer-1',
    evmSecret: Uint8Array.from(Buffer.from(SECRET_1.slice(2), 'hex')),
    evmAddress: evmAddressOf(SECRET_1),
    freeze: null,
    prior: null,
    ledger: emptyLedger,
    nextNonce: 0n,
    signedAtNonce: null,
    attestation: { kind: 'read', state: honestState(0n) },
    ...over,
  };
}

function codeOf(i: EvmDecisionInput): string {
  const d = decideEvmJob(i);
  return d.ok ? d.value.kind : d.code;
}

describe('decideEvmJob', () => {
  it('signs the hash it computed for the SafeTx it built, with the keystore key', () => {
    for (const asset of ['eth', 'usdt'] as const) {
      const i = input({ asset, amount: asset === 'eth' ? ETH : 25_000_000n });
      const d = decideEvmJob(i);
      if (!d.ok || d.value.kind !== 'signed') throw new Error(`not signed: ${JSON.stringify(d)}`);
      const hash = safeTxHash(
        world.safes['eth-safe'].address as Address,
        31337,
        fromJobSafeTx(i.job.safeTx!),
      );
      expect(`0x${d.value.safeTxHash}`).toBe(hash);
      const who = recoverSafeSigner(hash, d.value.safeSignature as Hex);
      expect(who.ok && who.value).toBe(evmAddressOf(SECRET_1));
      expect(d.value.nonce).toBe(0n);
    }
  });

  it.each<[string, Attestation]>([
    ['no trusted node is configured for the chain', { kind: 'unconfigured', chain: 'eip155:31337' }],
    ['the node did not answer', { kind: 'failed', message: 'connect ECONNREFUSED' }],
  ])('refuses UNAVAILABLE when %s', (_, attestation) => {
    expect(codeOf(input({}, { attestation }))).toBe('UNAVAILABLE');
  });

  it('refuses UNAVAILABLE with a keystore made before EVM support, NOT_AUTHORIZED with a key that is not its governed owner seat', () => {
    expect(codeOf(input({}, { evmSecret: null, evmAddress: null }))).toBe('UNAVAILABLE');
    expect(
      codeOf(
        input(
          {},
          {
            evmSecret: Uint8Array.from(Buffer.from(SECRET_2.slice(2), 'hex')),
            evmAddress: evmAddressOf(SECRET_2),
          },
        ),
      ),
    ).toBe('NOT_AUTHORIZED');
    expect(codeOf(input({}, { signerId: 'signer-9' }))).toBe('NOT_AUTHORIZED');
  });

  it('refuses SAFE_STATE_MISMATCH when the node shows other owners or another singleton', () => {
    const other = { ...honestState(0n), owners: [...honestState(0n).owners!, a(0xa7)] };
    expect(codeOf(input({}, { attestation: { kind: 'read', state: other } }))).toBe('SAFE_STATE_MISMATCH');
    const swapped = { ...honestState(0n), singleton: a(0xbd) };
    expect(codeOf(input({}, { attestation: { kind: 'read', state: swapped } }))).toBe('SAFE_STATE_MISMATCH');
  });

  it('takes the next nonce from its own ledger, or the on-chain nonce when that is higher', () => {
    // Its ledger signed 0..4; the Safe is at 3: the next is 5, not 3 and not 6.
    const ledgerAhead = { nextNonce: 5n, attestation: { kind: 'read', state: honestState(3n) } as const };
    expect(codeOf(input({ nonce: 5n }, ledgerAhead))).toBe('signed');
    expect(codeOf(input({ nonce: 6n }, ledgerAhead))).toBe('CALLDATA_MISMATCH');
    // Others executed up to 7 meanwhile: 7 is next.
    const chainAhead = { nextNonce: 5n, attestation: { kind: 'read', state: honestState(7n) } as const };
    expect(codeOf(input({ nonce: 7n }, chainAhead))).toBe('signed');
    expect(codeOf(input({ nonce: 5n }, chainAhead))).toBe('SAFE_NONCE_REUSED');
    // Attestation off (benchmarks): the ledger alone.
    expect(codeOf(input({ nonce: 5n }, { nextNonce: 5n, attestation: { kind: 'off' } }))).toBe('signed');
  });

  it('refuses SAFE_NONCE_REUSED for a nonce it already signed for another intent', () => {
    expect(
      codeOf(
        input({ nonce: 0n }, { signedAtNonce: { intent: 'ab'.repeat(32), safeTxHash: 'cd'.repeat(32) } }),
      ),
    ).toBe('SAFE_NONCE_REUSED');
  });

  it('THREATS 14: an intent signed before gets its stored answer for the same SafeTx, DUPLICATE_INTENT for another', () => {
    const i = input();
    const d = decideEvmJob(i);
    if (!d.ok || d.value.kind !== 'signed') throw new Error('not signed');
    const result = { receipt: { txid: d.value.safeTxHash } } as unknown as SignerResult;
    const prior = { txid: d.value.safeTxHash, result };
    const again = decideEvmJob({ ...i, prior });
    expect(again.ok && again.value.kind === 'repeat' && again.value.result).toBe(result);
    const other = { ...i.job, safeTx: { ...i.job.safeTx!, nonce: '1' } };
    expect(codeOf({ ...i, job: other, prior })).toBe('DUPLICATE_INTENT');
  });

  it('THREATS 20: applies the rolling limit per asset from its own ledger, sums beyond 2^63 exact', () => {
    // 100 ETH a day (10^20 wei, above 2^63): 99 ETH already signed leaves room for exactly 1.
    const used = (wei: bigint): LedgerView => ({
      ...emptyLedger,
      sum: (q) => (q.asset === 'eth' ? wei : 0n),
    });
    expect(2n ** 63n < 99n * ETH).toBe(true);
    expect(codeOf(input({ amount: ETH }, { ledger: used(99n * ETH) }))).toBe('signed');
    expect(codeOf(input({ amount: ETH }, { ledger: used(99n * ETH + 1n) }))).toBe('LIMIT_EXCEEDED');
    // The token's limit is its own: ETH used does not count against USDT.
    expect(codeOf(input({ asset: 'usdt', amount: 25_000_000n }, { ledger: used(100n * ETH) }))).toBe(
      'signed',
    );
  });

  it('refuses FROZEN when this signer froze itself, before anything else', () => {
    expect(codeOf(input({}, { freeze: { reason: 'SAFE_STATE_MISMATCH' } }))).toBe('FROZEN');
  });
});
