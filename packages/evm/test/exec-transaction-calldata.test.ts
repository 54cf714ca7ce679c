/** execTransaction calldata: viem's encoding of Safe's ABI, decoded strictly. */
import { getAddress, type Hex } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  buildTransferSafeTx,
  decodeExecTransaction,
  encodeErc20Transfer,
  encodeExecTransaction,
} from '../src/index.js';

const TOKEN = getAddress('0xdac17f958d2ee523a2206206994597c13d831ec7');
const RECIPIENT = getAddress('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed');
const SIGS = `0x${'11'.repeat(65)}${'22'.repeat(65)}` as Hex;

describe('execTransaction calldata', () => {
  const tx = buildTransferSafeTx({
    asset: { kind: 'erc20', contract: TOKEN },
    to: RECIPIENT,
    amount: 25_000_000n,
    nonce: 7n,
  });
  const { nonce: _nonce, ...executed } = tx;

  it('should start with execTransaction’s selector 6a761202 and round-trip', () => {
    const data = encodeExecTransaction(tx, SIGS);
    expect(data.slice(0, 10)).toBe('0x6a761202');
    expect(decodeExecTransaction(data)).toEqual({ ok: true, value: { tx: executed, signatures: SIGS } });
  });

  it('should refuse trailing bytes, another function and non-hex', () => {
    const data = encodeExecTransaction(tx, SIGS);
    expect(decodeExecTransaction(`${data}00` as Hex).ok).toBe(false);
    expect(decodeExecTransaction(encodeErc20Transfer(RECIPIENT, 1n)).ok).toBe(false);
    expect(decodeExecTransaction('0xzz' as Hex).ok).toBe(false);
  });

  it('should refuse a non-canonical encoding (dirty padding in the operation word)', () => {
    const data = encodeExecTransaction(tx, SIGS);
    // Word 3 (operation, uint8) starts at 4 + 3*32 bytes; set a high byte.
    const at = 2 + 2 * (4 + 3 * 32);
    const dirty = `${data.slice(0, at)}ff${data.slice(at + 2)}` as Hex;
    const r = decodeExecTransaction(dirty);
    expect(r.ok).toBe(false);
  });
});
