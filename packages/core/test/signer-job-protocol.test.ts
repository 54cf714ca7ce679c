/**
 * The signer job protocol with EVM Safe jobs (issue 9): a job carries a
 * `psbt` or a `safeTx`, exactly one; the `safeTx` proposal is shaped
 * strictly (checksummed addresses, canonical decimals, lower-case calldata,
 * 10 KB at most) but every attack stays representable so that the signer,
 * not the decoder, refuses it with its own code; a result may carry the
 * owner's `safeSignature`. Bitcoin jobs decode exactly as before.
 */
import { createOrg } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { CustosError } from '../src/errors.js';
import { toChecksumAddress } from '../src/evm.js';
import { type JobSafeTx, jobSafeTx, type SignerJob, signerJob, signerResult } from '../src/jobs.js';
import { signDigest } from '../src/keys.js';
import { type Intent, intentDigest } from '../src/objects.js';
import type { Amount, Hex } from '../src/types.js';

const org = createOrg();
const addr = (hex2: string) => toChecksumAddress(`0x${hex2.repeat(20)}`);
const ZERO = addr('00');

const body: Intent = {
  v: 1,
  org: org.orgId,
  wallet: 'eth-safe',
  chain: 'eip155:31337',
  asset: 'eth',
  amount: '1000000000000000000' as Amount,
  to: addr('d8'),
  requester: org.requester.id,
  device: org.requester.device.id,
  nonce: '0123456789abcdef0123456789abcdef' as Hex,
  createdAt: 1_700_000_000_000,
  expiresAt: 1_700_003_600_000,
};
const intent = { intent: body, signature: signDigest(org.requester.device.secretKey, intentDigest(body)) };

const safeTx: JobSafeTx = {
  safe: addr('5a'),
  chainId: '31337',
  to: addr('d8'),
  value: '1000000000000000000',
  data: '0x',
  operation: 0,
  safeTxGas: '0',
  baseGas: '0',
  gasPrice: '0',
  gasToken: ZERO,
  refundReceiver: ZERO,
  nonce: '0',
};

const base = {
  v: 1 as const,
  id: 'job-1',
  signer: 'signer-1',
  intent,
  approvals: [],
  governance: { seq: 0, digest: org.orgId },
};

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof CustosError) return `${err.code} ${String(err.details.path ?? err.message)}`;
    throw err;
  }
}

describe('signer jobs: a psbt or a safeTx, exactly one', () => {
  it('should decode a Bitcoin job as before, with no safeTx', () => {
    const job = { ...base, psbt: 'cHNidP8BAAoCAAAAAAAAAAAAAAA=' };
    const parsed = signerJob.parse(job);
    expect(parsed).toEqual(job);
    expect('safeTx' in parsed).toBe(false);
  });

  it('should decode an EVM job with its proposed SafeTx, attacks included (DELEGATECALL, refunds)', () => {
    const evm: SignerJob = { ...base, safeTx };
    expect(signerJob.parse(evm)).toEqual(evm);
    const bybit = { ...safeTx, operation: 1, data: '0xa9059cbb' };
    const refund = { ...safeTx, gasPrice: '1000000000000', refundReceiver: addr('a7') };
    expect(codeOf(() => signerJob.parse({ ...base, safeTx: bybit }))).toBe('ok');
    expect(codeOf(() => signerJob.parse({ ...base, safeTx: refund }))).toBe('ok');
  });

  it('should refuse a job with both a psbt and a safeTx, and one with neither', () => {
    expect(codeOf(() => signerJob.parse({ ...base, psbt: 'cHNidP8BAAoCAAAAAAAAAAAAAAA=', safeTx }))).toMatch(
      /^INVALID_VALUE/,
    );
    expect(codeOf(() => signerJob.parse(base))).toMatch(/^MISSING_FIELD/);
  });

  it.each([
    ['a lower-case Safe address', { safe: addr('5a').toLowerCase() }],
    ['a wrong EIP-55 checksum', { to: `0x${'dD'.repeat(20)}` }],
    ['upper-case calldata', { data: '0xA9059CBB' }],
    ['calldata of half a byte', { data: '0xa90' }],
    ['calldata over 10 KB', { data: `0x${'00'.repeat(10_241)}` }],
    ['a leading zero in a decimal', { nonce: '01' }],
    ['a value above 2^256 - 1', { value: (1n << 256n).toString() }],
    ['a JSON number for a decimal', { value: 1 }],
    ['operation 2', { operation: 2 }],
    ['an unknown field', { signatures: '0x' }],
  ])('should refuse a safeTx with %s', (_, change) => {
    expect(codeOf(() => jobSafeTx.parse({ ...safeTx, ...change }))).not.toBe('ok');
  });

  it('should describe in the schema that exactly one of psbt and safeTx is present', () => {
    expect(signerJob.jsonSchema.oneOf).toEqual([{ required: ['psbt'] }, { required: ['safeTx'] }]);
  });
});

describe('signer results: safeSignature', () => {
  const receipt = {
    v: 1 as const,
    signer: 'signer-1',
    job: 'job-1',
    intent: intentDigest(body),
    txid: 'ab'.repeat(32),
    outcome: 'signed' as const,
    code: null,
    governanceSeq: 0,
    governanceHead: org.orgId,
    at: 1_700_000_000_000,
  };
  const signature = '00'.repeat(64);

  it('should carry a 65-byte owner signature, 0x and lower-case hex', () => {
    const r = { receipt, signature, safeSignature: `0x${'11'.repeat(64)}1b` };
    expect(signerResult.parse(r)).toEqual(r);
  });

  it.each([
    ['without 0x', '11'.repeat(65)],
    ['64 bytes', `0x${'11'.repeat(64)}`],
    ['upper-case', `0x${'AA'.repeat(65)}`],
  ])('should refuse a safeSignature %s', (_, safeSignature) => {
    expect(codeOf(() => signerResult.parse({ receipt, signature, safeSignature }))).not.toBe('ok');
  });
});
