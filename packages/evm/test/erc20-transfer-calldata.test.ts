/** ERC-20 transfer(address,uint256): encoded as viem does, decoded strictly. */
import fc from 'fast-check';
import { type Address, encodeFunctionData, getAddress, type Hex, parseAbi } from 'viem';
import { describe, expect, it } from 'vitest';
import { decodeErc20Transfer, ERC20_TRANSFER_SELECTOR, encodeErc20Transfer } from '../src/index.js';

const RECIPIENT = getAddress('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed');
const PEER_ABI = parseAbi(['function transfer(address to, uint256 amount) returns (bool)']);

describe('ERC-20 transfer calldata', () => {
  it('should be selector a9059cbb, a zero-padded address word and the amount word (68 bytes)', () => {
    const data = encodeErc20Transfer(RECIPIENT, 1_500_000n);
    expect(data).toBe(
      `0xa9059cbb${'0'.repeat(24)}${RECIPIENT.slice(2).toLowerCase()}${1_500_000n.toString(16).padStart(64, '0')}`,
    );
    expect(data.slice(0, 10)).toBe(ERC20_TRANSFER_SELECTOR);
    expect(decodeErc20Transfer(data)).toEqual({ ok: true, value: { to: RECIPIENT, amount: 1_500_000n } });
  });

  it('should round-trip random recipients and amounts and match viem (the peer)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }),
        (b, amount) => {
          const to = getAddress(`0x${Buffer.from(b).toString('hex')}`) as Address;
          const data = encodeErc20Transfer(to, amount);
          expect(data).toBe(
            encodeFunctionData({ abi: PEER_ABI, functionName: 'transfer', args: [to, amount] }),
          );
          expect(decodeErc20Transfer(data)).toEqual({ ok: true, value: { to, amount } });
        },
      ),
    );
  });

  it('should refuse trailing bytes, a short word, another selector and dirty address padding', () => {
    const good = encodeErc20Transfer(RECIPIENT, 5n);
    const cases: [Hex, string][] = [
      [`${good}00`, 'INVALID_VALUE'],
      [good.slice(0, -2) as Hex, 'INVALID_VALUE'],
      [`0x23b872dd${good.slice(10)}`, 'INVALID_VALUE'], // transferFrom's selector
      [`0x095ea7b3${good.slice(10)}`, 'INVALID_VALUE'], // approve's selector
      [`0xa9059cbb${'0'.repeat(23)}1${good.slice(34)}`, 'NON_CANONICAL_ENCODING'],
      ['0x', 'INVALID_VALUE'],
      [`${good.slice(0, -1)}g` as Hex, 'INVALID_VALUE'],
    ];
    for (const [data, code] of cases) {
      const r = decodeErc20Transfer(data);
      expect(!r.ok && r.code, data).toBe(code);
    }
  });
});
