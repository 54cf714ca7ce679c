/**
 * What `custos approve` shows of a Safe transaction (review-evm.ts, THREATS
 * 28-29): the plain transfer the intent names passes with every field shown;
 * each field of Bybit's, WazirX's, Radiant's and a gas-refund thief's
 * proposal that is not the plain transfer is a warning of its own, and the
 * signer's check is a problem that stops the approval. And `--amount` in an
 * asset's unit (args.ts parseAssetAmount).
 */
import type { Asset, EvmSafeWallet, GovernanceState, Intent, JobSafeTx } from '@custos/core';
import { encodeErc20Transfer } from '@custos/evm';
import { describe, expect, it } from 'vitest';
import { parseAssetAmount } from '../src/args.js';
import { reviewSafeTx } from '../src/review-evm.js';

const SAFE = '0x1111111111111111111111111111111111111111';
const TOKEN = '0x2222222222222222222222222222222222222222';
const PAYEE = '0x3333333333333333333333333333333333333333';
const ATTACKER = '0x4444444444444444444444444444444444444444';
const ZERO = '0x0000000000000000000000000000000000000000';

const usdt: Asset = {
  id: 'usdt',
  chain: 'eip155:31337',
  kind: 'erc20',
  contract: TOKEN as Extract<Asset, { kind: 'erc20' }>['contract'],
  symbol: 'USDT',
  decimals: 6,
};
const eth: Asset = { id: 'eth', chain: 'eip155:31337', kind: 'native', symbol: 'ETH', decimals: 18 };
/** Only the asset registry is read by the review of a SafeTx. */
const state = {
  assets: new Map([
    ['usdt', { value: usdt, activeFrom: 0 }],
    ['eth', { value: eth, activeFrom: 0 }],
  ]),
} as unknown as GovernanceState;
const wallet = {
  id: 'eth-safe',
  label: 'Safe',
  chain: 'eip155:31337',
  assets: ['eth', 'usdt'],
  kind: 'evm-safe',
  address: SAFE,
  threshold: 2,
} as unknown as EvmSafeWallet;
const intent = { asset: 'usdt', amount: '25000000', to: PAYEE.toLowerCase() } as unknown as Intent;

const plain: JobSafeTx = {
  safe: SAFE as JobSafeTx['safe'],
  chainId: '31337',
  to: TOKEN as JobSafeTx['to'],
  value: '0',
  data: encodeErc20Transfer(PAYEE, 25_000_000n).toLowerCase(),
  operation: 0,
  safeTxGas: '0',
  baseGas: '0',
  gasPrice: '0',
  gasToken: ZERO as JobSafeTx['gasToken'],
  refundReceiver: ZERO as JobSafeTx['refundReceiver'],
  nonce: '4',
};

const codes = (r: ReturnType<typeof reviewSafeTx>) => ({
  warnings: r.warnings.map((w) => w.code),
  problems: r.problems.map((p) => p.code),
});

describe('custos approve of a Safe transaction', () => {
  it('should show every field of the plain transfer, decoded, with its hash and no warning', () => {
    const r = reviewSafeTx(intent, wallet, state, plain);
    expect(codes(r)).toEqual({ warnings: [], problems: [] });
    expect(r.review?.proposed).toBe(true);
    expect(r.review?.safeTxHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(r.review?.fields.map((f) => f.name)).toEqual([
      'safe',
      'chainId',
      'to',
      'value',
      'data',
      'operation',
      'safeTxGas',
      'baseGas',
      'gasPrice',
      'gasToken',
      'refundReceiver',
      'nonce',
    ]);
    const data = r.review?.fields.find((f) => f.name === 'data');
    expect(data?.note).toBe(
      'transfer(0x3333333333333333333333333333333333333333, 25 USDT (25000000 base units))',
    );
  });

  it('should build the one transfer the intent allows before the coordinator has (nonce not yet known)', () => {
    const r = reviewSafeTx(intent, wallet, state, null);
    expect(r.review?.proposed).toBe(false);
    expect(r.review?.safeTxHash).toBeNull();
    expect(r.review?.fields.find((f) => f.name === 'nonce')?.value).toContain('assigned when');
  });

  it('should warn on DELEGATECALL and refuse the approval (Bybit)', () => {
    const r = reviewSafeTx(intent, wallet, state, {
      ...plain,
      to: ATTACKER as JobSafeTx['to'],
      operation: 1,
    });
    expect(codes(r).warnings).toContain('OPERATION_FORBIDDEN');
    expect(r.warnings.find((w) => w.code === 'OPERATION_FORBIDDEN')?.message).toContain('DELEGATECALL');
    expect(codes(r).problems).toEqual(['OPERATION_FORBIDDEN']);
    expect(r.review?.fields.find((f) => f.name === 'operation')?.note).toBe('DELEGATECALL');
  });

  it('should warn on a call to the Safe itself (WazirX) and on calldata that is no transfer (Radiant)', () => {
    const wazirx = reviewSafeTx(intent, wallet, state, {
      ...plain,
      to: SAFE as JobSafeTx['to'],
      data: '0x0d582f13',
    });
    expect(wazirx.warnings.map((w) => w.message).join('\n')).toMatch(/a call to the Safe itself/);
    expect(codes(wazirx).problems).toEqual(['OPERATION_FORBIDDEN']);
    const radiant = reviewSafeTx(intent, wallet, state, {
      ...plain,
      to: ATTACKER as JobSafeTx['to'],
      data: `0xf2fde38b${ATTACKER.slice(2).padStart(64, '0')}`,
    });
    expect(codes(radiant).warnings).toContain('CALLDATA_MISMATCH');
    expect(radiant.review?.fields.find((f) => f.name === 'data')?.note).toContain('NOT AN ERC-20 TRANSFER');
    expect(codes(radiant).problems).toHaveLength(1);
  });

  it('should warn on each gas-refund field and on another amount or chain', () => {
    const refund = reviewSafeTx(intent, wallet, state, {
      ...plain,
      gasPrice: '1',
      refundReceiver: ATTACKER as JobSafeTx['refundReceiver'],
    });
    expect(refund.warnings.map((w) => w.message)).toEqual([
      'gasPrice 1: the Safe would pay a gas refund',
      `refundReceiver ${ATTACKER}: a refund would be paid to it`,
    ]);
    const more = reviewSafeTx(intent, wallet, state, {
      ...plain,
      data: encodeErc20Transfer(PAYEE, 26_000_000n).toLowerCase(),
    });
    expect(codes(more)).toEqual({ warnings: ['CALLDATA_MISMATCH'], problems: ['CALLDATA_MISMATCH'] });
    const chain = reviewSafeTx(intent, wallet, state, { ...plain, chainId: '1' });
    expect(codes(chain)).toEqual({ warnings: ['WRONG_CHAIN'], problems: ['WRONG_CHAIN'] });
  });

  it('should refuse a destination whose EIP-55 checksum is wrong', () => {
    const bad = { ...intent, to: '0xAbcdef0000000000000000000000000000000000' } as Intent;
    expect(codes(reviewSafeTx(bad, wallet, state, null)).problems).toEqual(['ADDRESS_CHECKSUM_INVALID']);
  });
});

describe('--amount in an asset unit', () => {
  it('should read the unit by the asset decimals, or base units without one', () => {
    expect(parseAssetAmount('25usdt', usdt)).toBe('25000000');
    expect(parseAssetAmount('25.5 USDT', usdt)).toBe('25500000');
    expect(parseAssetAmount('0.1eth', eth)).toBe('100000000000000000');
    expect(parseAssetAmount('1500', usdt)).toBe('1500');
  });

  it('should refuse another unit, too many decimals, decimals without a unit, and zero', () => {
    expect(() => parseAssetAmount('1eth', usdt)).toThrow(/is in eth, but the asset is usdt/);
    expect(() => parseAssetAmount('0.0000001usdt', usdt)).toThrow(/7 decimals, more than USDT has \(6\)/);
    expect(() => parseAssetAmount('1.5', usdt)).toThrow(/without a unit it is in base units/);
    expect(() => parseAssetAmount('0usdt', usdt)).toThrow(/zero/);
  });
});
