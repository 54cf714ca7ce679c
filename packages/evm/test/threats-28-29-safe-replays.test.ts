/**
 * THREATS 28-29 against the real payload shapes, on a real Safe 1.4.1.
 *
 * Each replay first shows the payload does what the attacker wanted when
 * owners sign it blindly (on a victim Safe of its own), then that
 * checkSafeTxIsPlainTransfer refuses it, for the intent the signers
 * believed they were approving, with its stable code:
 * - Bybit (Feb 2025): DELEGATECALL to a trojan whose transfer() writes slot 0;
 * - WazirX (Jul 2024): a payload to the Safe itself that changes the Safe;
 * - Radiant (Oct 2024): transferOwnership of a contract the Safe owns;
 * - a gas-refund theft: gasPrice > 0, refundReceiver the attacker;
 * - the same SafeTx for another chain id.
 * The state attestation then sees the victims' changed singleton and modules.
 */
import {
  BACKDOOR_ABI,
  type EvmChain,
  OWNABLE_ABI,
  startEvmChain,
  TROJAN_ABI,
} from '@custos/test-support/evm-chain';
import { type Address, encodeFunctionData, getAddress, type Hex, parseAbi } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTransferSafeTx,
  CALLDATA_MISMATCH,
  checkSafeState,
  checkSafeTxIsPlainTransfer,
  type ExpectedTransfer,
  encodeErc20Transfer,
  type GovernedSafeState,
  OPERATION_DELEGATECALL,
  OPERATION_FORBIDDEN,
  SAFE_ABI,
  SAFE_STATE_MISMATCH,
  type SafeTx,
  safeTxHash,
  WRONG_CHAIN,
  ZERO_ADDRESS,
} from '../src/index.js';
import { readSafeState } from '../src/state.js';
import { ethBalance, execute, signByOwners, tokenBalance } from './support.js';

const SAFE_ADMIN_ABI = parseAbi([
  'function changeMasterCopy(address _masterCopy)',
  'function addOwnerWithThreshold(address owner, uint256 _threshold)',
  'function changeThreshold(uint256 _threshold)',
  'function enableModule(address module)',
  'function setGuard(address guard)',
  'function setFallbackHandler(address handler)',
  'function setup(address[] _owners, uint256 _threshold, address to, bytes data, address fallbackHandler, address paymentToken, uint256 payment, address paymentReceiver)',
]);

let chain: EvmChain;
let owners: Address[];
let ownerKeys: Hex[];
let attacker: Address;
let safe: Address;
let governed: GovernedSafeState;
const warmWallet = getAddress('0x00000000000000000000000000000000000a11ce');

beforeAll(async () => {
  chain = await startEvmChain();
  owners = chain.accounts.slice(1, 4).map((a) => a.address);
  ownerKeys = chain.accounts.slice(1, 3).map((a) => a.privateKey);
  attacker = chain.accounts[5]!.address;
  safe = (await chain.deploySafe(owners, 2)).address;
  governed = {
    singleton: chain.safeContracts.singleton,
    singletonCodeHash: chain.safeContracts.singletonCodeHash,
    owners,
    threshold: 2n,
    modules: [],
    guard: ZERO_ADDRESS,
    fallbackHandler: chain.safeContracts.fallbackHandler,
  };
});

afterAll(async () => {
  await chain?.stop();
});

async function nonceOf(address: Address): Promise<bigint> {
  return chain.publicClient.readContract({ address, abi: SAFE_ABI, functionName: 'nonce' });
}

/** The routine transfer the signers were shown: 1 ETH to the warm wallet. */
function routineEth(onSafe: Address, nonce: bigint): ExpectedTransfer {
  return {
    chainId: chain.chainId,
    safe: onSafe,
    asset: { kind: 'native' },
    to: warmWallet,
    amount: 10n ** 18n,
    nonce,
  };
}

function routineToken(onSafe: Address, nonce: bigint): ExpectedTransfer {
  return {
    chainId: chain.chainId,
    safe: onSafe,
    asset: { kind: 'erc20', contract: chain.token },
    to: warmWallet,
    amount: 25_000_000n,
    nonce,
  };
}

function plain(fields: Partial<SafeTx> & Pick<SafeTx, 'to' | 'data' | 'nonce'>): SafeTx {
  return {
    value: 0n,
    operation: 0,
    safeTxGas: 0n,
    baseGas: 0n,
    gasPrice: 0n,
    gasToken: ZERO_ADDRESS,
    refundReceiver: ZERO_ADDRESS,
    ...fields,
  };
}

function codeOf(r: ReturnType<typeof checkSafeTxIsPlainTransfer>): string {
  return r.ok ? 'ACCEPTED' : r.code;
}

describe('the plain transfer the intent names', () => {
  it('should be accepted, with the hash the deployed Safe computes', async () => {
    for (const expected of [routineEth(safe, 0n), routineToken(safe, 0n)]) {
      const r = checkSafeTxIsPlainTransfer(
        { chainId: chain.chainId, safe, tx: buildTransferSafeTx(expected) },
        expected,
      );
      expect(r.ok).toBe(true);
      const tx = buildTransferSafeTx(expected);
      const onChain = await chain.publicClient.readContract({
        address: safe,
        abi: SAFE_ABI,
        functionName: 'getTransactionHash',
        args: [
          tx.to,
          tx.value,
          tx.data,
          tx.operation,
          tx.safeTxGas,
          tx.baseGas,
          tx.gasPrice,
          tx.gasToken,
          tx.refundReceiver,
          tx.nonce,
        ],
      });
      expect(r.ok && r.value.safeTxHash).toBe(onChain);
    }
  });

  it('should accept lower-case spellings of the same addresses', () => {
    const expected = routineToken(safe, 3n);
    const tx = buildTransferSafeTx(expected);
    const lower = { ...tx, to: tx.to.toLowerCase() as Address, data: tx.data.toLowerCase() as Hex };
    expect(codeOf(checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx: lower }, expected))).toBe(
      'ACCEPTED',
    );
  });
});

describe('THREATS 28: Bybit, DELEGATECALL to a trojan that rewrites slot 0', () => {
  const bybitTx = (nonce: bigint): SafeTx =>
    plain({
      to: chain.trojan,
      data: encodeFunctionData({ abi: TROJAN_ABI, functionName: 'transfer', args: [chain.backdoor, 0n] }),
      operation: OPERATION_DELEGATECALL,
      nonce,
    });

  it('should, signed blindly, replace the singleton and let the attacker sweep the Safe (the replay is real)', async () => {
    const victim = (await chain.deploySafe(owners, 2)).address;
    const tx = bybitTx(await nonceOf(victim));
    await execute(chain, victim, tx, signByOwners(victim, chain.chainId, tx, ownerKeys));
    const state = await readSafeState(chain.rpcUrl, victim);
    expect(state.singleton).toBe(chain.backdoor);
    expect(state.owners).toBeNull(); // getOwners now runs the backdoor's code and reverts
    const mismatch = checkSafeState(state, { ...governed, owners });
    expect(!mismatch.ok && mismatch.code).toBe(SAFE_STATE_MISMATCH);
    expect(!mismatch.ok && mismatch.details?.field).toBe('singleton');

    const loot = getAddress('0x0000000000000000000000000000000000b0b0b0');
    const [eth, tokens] = [await ethBalance(chain, victim), await tokenBalance(chain, victim)];
    await chain.send(
      attacker,
      victim,
      encodeFunctionData({ abi: BACKDOOR_ABI, functionName: 'sweepETH', args: [loot] }),
    );
    await chain.send(
      attacker,
      victim,
      encodeFunctionData({ abi: BACKDOOR_ABI, functionName: 'sweepERC20', args: [chain.token, loot] }),
    );
    expect(await ethBalance(chain, loot)).toBe(eth);
    expect(await tokenBalance(chain, loot)).toBe(tokens);
  });

  it('should be refused OPERATION_FORBIDDEN for the transfer the signers were shown', () => {
    const r = checkSafeTxIsPlainTransfer(
      { chainId: chain.chainId, safe, tx: bybitTx(0n) },
      routineEth(safe, 0n),
    );
    expect(codeOf(r)).toBe(OPERATION_FORBIDDEN);
    expect(!r.ok && r.details?.operation).toBe(1);
  });

  it('should refuse DELEGATECALL even when the calldata is exactly the approved token transfer', () => {
    const expected = routineToken(safe, 0n);
    const tx = { ...buildTransferSafeTx(expected), operation: OPERATION_DELEGATECALL };
    expect(codeOf(checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, expected))).toBe(
      OPERATION_FORBIDDEN,
    );
  });
});

describe('THREATS 28: WazirX, a payload to the Safe itself', () => {
  const selfCalls = (): [string, Hex][] => [
    [
      'changeMasterCopy (upgrade)',
      encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'changeMasterCopy', args: [chain.backdoor] }),
    ],
    [
      'addOwnerWithThreshold',
      encodeFunctionData({
        abi: SAFE_ADMIN_ABI,
        functionName: 'addOwnerWithThreshold',
        args: [attacker, 1n],
      }),
    ],
    [
      'changeThreshold',
      encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'changeThreshold', args: [1n] }),
    ],
    [
      'enableModule',
      encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'enableModule', args: [attacker] }),
    ],
    ['setGuard', encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'setGuard', args: [attacker] })],
    [
      'setFallbackHandler',
      encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'setFallbackHandler', args: [attacker] }),
    ],
    [
      'setup',
      encodeFunctionData({
        abi: SAFE_ADMIN_ABI,
        functionName: 'setup',
        args: [[attacker], 1n, ZERO_ADDRESS, '0x', ZERO_ADDRESS, ZERO_ADDRESS, 0n, ZERO_ADDRESS],
      }),
    ],
    ['an ERC-20 transfer shape addressed to the Safe', encodeErc20Transfer(warmWallet, 10n ** 18n)],
    ['an empty call with the amount', '0x'],
  ];

  it('should, signed blindly, give the Safe to an attacker’s module (the replay is real)', async () => {
    const victim = (await chain.deploySafe(owners, 2)).address;
    const tx = plain({
      to: victim,
      data: encodeFunctionData({ abi: SAFE_ADMIN_ABI, functionName: 'enableModule', args: [attacker] }),
      nonce: await nonceOf(victim),
    });
    await execute(chain, victim, tx, signByOwners(victim, chain.chainId, tx, ownerKeys));
    const state = await readSafeState(chain.rpcUrl, victim);
    expect(state.modules).toEqual([attacker]);
    const mismatch = checkSafeState(state, governed);
    expect(!mismatch.ok && mismatch.details?.field).toBe('modules');
  });

  it('should refuse every call to the Safe itself OPERATION_FORBIDDEN', () => {
    for (const [label, data] of selfCalls()) {
      const tx = plain({ to: safe, data, nonce: 0n, value: data === '0x' ? 10n ** 18n : 0n });
      const r = checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, routineEth(safe, 0n));
      expect(codeOf(r), label).toBe(OPERATION_FORBIDDEN);
    }
  });

  it('should refuse the upgrade delegatecalled through a library OPERATION_FORBIDDEN', () => {
    const tx = plain({
      to: chain.safeContracts.multiSendCallOnly,
      data: encodeFunctionData({
        abi: SAFE_ADMIN_ABI,
        functionName: 'changeMasterCopy',
        args: [chain.backdoor],
      }),
      operation: OPERATION_DELEGATECALL,
      nonce: 0n,
    });
    expect(
      codeOf(checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, routineToken(safe, 0n))),
    ).toBe(OPERATION_FORBIDDEN);
  });
});

describe('THREATS 28: Radiant, transferOwnership of a contract the Safe owns', () => {
  it('should, signed blindly, hand the pool to the attacker (the replay is real)', async () => {
    const victim = await chain.deploySafe(owners, 2);
    const tx = plain({
      to: victim.ownable,
      data: encodeFunctionData({ abi: OWNABLE_ABI, functionName: 'transferOwnership', args: [attacker] }),
      nonce: await nonceOf(victim.address),
    });
    expect(
      await chain.publicClient.readContract({
        address: victim.ownable,
        abi: OWNABLE_ABI,
        functionName: 'owner',
      }),
    ).toBe(victim.address);
    await execute(chain, victim.address, tx, signByOwners(victim.address, chain.chainId, tx, ownerKeys));
    expect(
      await chain.publicClient.readContract({
        address: victim.ownable,
        abi: OWNABLE_ABI,
        functionName: 'owner',
      }),
    ).toBe(attacker);
  });

  it('should be refused OPERATION_FORBIDDEN, whatever the intent’s asset', async () => {
    const pool = await chain.deployOwnable(safe);
    const tx = plain({
      to: pool,
      data: encodeFunctionData({ abi: OWNABLE_ABI, functionName: 'transferOwnership', args: [attacker] }),
      nonce: 0n,
    });
    for (const expected of [routineEth(safe, 0n), routineToken(safe, 0n)]) {
      const r = checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, expected);
      expect(codeOf(r)).toBe(OPERATION_FORBIDDEN);
      expect(!r.ok && r.details?.selector).toBe('0xf2fde38b');
    }
  });
});

describe('THREATS 28: gas-refund theft', () => {
  const refundTheft = (expected: ExpectedTransfer): SafeTx => ({
    ...buildTransferSafeTx(expected),
    baseGas: 1_000_000n,
    gasPrice: 10n ** 13n,
    refundReceiver: attacker,
  });

  it('should, signed blindly, pay the attacker from the Safe in its own token (the replay is real)', async () => {
    // With gasToken the ETH zero address Safe caps the refund price at tx.gasprice; with a token
    // there is no cap: (gasUsed + baseGas) * gasPrice base units go to refundReceiver.
    const victim = (await chain.deploySafe(owners, 2)).address;
    const expected = routineEth(victim, await nonceOf(victim));
    const tx: SafeTx = { ...refundTheft(expected), gasToken: chain.token, gasPrice: 100_000n };
    const [before, attackerBefore] = [await tokenBalance(chain, victim), await tokenBalance(chain, attacker)];
    await execute(chain, victim, tx, signByOwners(victim, chain.chainId, tx, ownerKeys));
    const paid = before - (await tokenBalance(chain, victim));
    expect(paid).toBeGreaterThanOrEqual(1_000_000n * 100_000n); // at least baseGas * gasPrice: 100,000 tokens
    expect((await tokenBalance(chain, attacker)) - attackerBefore).toBe(paid);
  });

  it('should refuse each refund field OPERATION_FORBIDDEN, even around the exact approved transfer', () => {
    const expected = routineToken(safe, 0n);
    const base = buildTransferSafeTx(expected);
    const variants: [string, Partial<SafeTx>][] = [
      ['gasPrice', { gasPrice: 1n, refundReceiver: attacker }],
      ['gasPrice', { gasPrice: 1n }],
      ['safeTxGas', { safeTxGas: 1n }],
      ['baseGas', { baseGas: 21_000n }],
      ['gasToken', { gasToken: chain.token }],
      ['refundReceiver', { refundReceiver: attacker }],
    ];
    for (const [field, change] of variants) {
      const r = checkSafeTxIsPlainTransfer(
        { chainId: chain.chainId, safe, tx: { ...base, ...change } },
        expected,
      );
      expect(codeOf(r), field).toBe(OPERATION_FORBIDDEN);
      expect(!r.ok && r.details?.field).toBe(field);
    }
    const eth = routineEth(safe, 0n);
    expect(
      codeOf(checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx: refundTheft(eth) }, eth)),
    ).toBe(OPERATION_FORBIDDEN);
  });
});

describe('WRONG_CHAIN: the same SafeTx for another chain id', () => {
  it('should be refused, and its hash is not this chain’s', () => {
    const expected = routineEth(safe, 0n);
    const tx = buildTransferSafeTx(expected);
    const r = checkSafeTxIsPlainTransfer({ chainId: 1, safe, tx }, expected);
    expect(codeOf(r)).toBe(WRONG_CHAIN);
    expect(safeTxHash(safe, 1, tx)).not.toBe(safeTxHash(safe, chain.chainId, tx));
  });

  it('should refuse a SafeTx for another Safe (UNKNOWN_WALLET)', () => {
    const expected = routineEth(safe, 0n);
    const r = checkSafeTxIsPlainTransfer(
      { chainId: chain.chainId, safe: chain.token, tx: buildTransferSafeTx(expected) },
      expected,
    );
    expect(codeOf(r)).toBe('UNKNOWN_WALLET');
  });
});

describe('THREATS 29: the plain transfer, but not the one approved (CALLDATA_MISMATCH)', () => {
  const other = getAddress('0x000000000000000000000000000000000000dead');

  it('should name the differing field for token transfers (DMM-style rewrite of recipient or amount)', () => {
    const expected = routineToken(safe, 4n);
    const cases: [string, SafeTx][] = [
      ['recipient', buildTransferSafeTx({ ...expected, to: other })],
      ['amount', buildTransferSafeTx({ ...expected, amount: expected.amount * 10n })],
      ['token', buildTransferSafeTx({ ...expected, asset: { kind: 'erc20', contract: other } })],
      ['value', { ...buildTransferSafeTx(expected), value: 1n }],
      ['nonce', buildTransferSafeTx({ ...expected, nonce: 5n })],
    ];
    for (const [field, tx] of cases) {
      const r = checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, expected);
      expect(codeOf(r), field).toBe(CALLDATA_MISMATCH);
      expect(!r.ok && r.details?.field).toBe(field);
    }
  });

  it('should name the differing field for native transfers', () => {
    const expected = routineEth(safe, 4n);
    const cases: [string, SafeTx][] = [
      ['recipient', buildTransferSafeTx({ ...expected, to: other })],
      ['value', buildTransferSafeTx({ ...expected, amount: 1n })],
      ['recipient', buildTransferSafeTx({ ...expected, asset: { kind: 'erc20', contract: chain.token } })],
    ];
    for (const [field, tx] of cases) {
      const r = checkSafeTxIsPlainTransfer({ chainId: chain.chainId, safe, tx }, expected);
      expect(codeOf(r), field).toBe(CALLDATA_MISMATCH);
      expect(!r.ok && r.details?.field).toBe(field);
    }
  });

  it('should refuse token calldata with a trailing byte OPERATION_FORBIDDEN (not the plain transfer)', () => {
    const expected = routineToken(safe, 4n);
    const tx = buildTransferSafeTx(expected);
    const r = checkSafeTxIsPlainTransfer(
      { chainId: chain.chainId, safe, tx: { ...tx, data: `${tx.data}00` } },
      expected,
    );
    expect(codeOf(r)).toBe(OPERATION_FORBIDDEN);
  });
});

describe('state attestation reads', () => {
  it('should read the governed Safe as governance pins it', async () => {
    const state = await readSafeState(chain.rpcUrl, safe);
    expect(state.singleton).toBe(chain.safeContracts.singleton);
    expect(state.fallbackHandler).toBe(chain.safeContracts.fallbackHandler);
    expect(state.guard).toBe(ZERO_ADDRESS);
    expect(state.modules).toEqual([]);
    expect(state.threshold).toBe(2n);
    expect(new Set(state.owners)).toEqual(new Set(owners));
    expect(checkSafeState(state, governed).ok).toBe(true);
    for (const [field, change] of [
      ['owners', { owners: [owners[0]!, owners[1]!, attacker] }],
      ['threshold', { threshold: 1n }],
      ['guard', { guard: attacker }],
      ['fallbackHandler', { fallbackHandler: ZERO_ADDRESS }],
      ['singletonCodeHash', { singletonCodeHash: `0x${'00'.repeat(32)}` as Hex }],
    ] as const) {
      const r = checkSafeState(state, { ...governed, ...change });
      expect(!r.ok && r.code, field).toBe(SAFE_STATE_MISMATCH);
      expect(!r.ok && r.details?.field).toBe(field);
    }
  });
});
