/**
 * Writes encoding.json: the encoding and digest test vectors of Custos.
 * Run: npx tsx packages/core/test/vectors/generate.ts
 *
 * Keys come from fixed seeds and Ed25519 is deterministic (RFC 8032), so the
 * output is the same on every run; encoding.test.ts checks the checked-in file
 * against the code, and README.md beside this file says how to check the
 * digests with nothing but sha256sum.
 */
import { writeFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../../src/bytes.js';
import { canonicalize, digestOf } from '../../src/jcs.js';
import { ed25519PublicKey, signDigest } from '../../src/keys.js';
import type { Approval, GenesisBody, GovernanceEntry, Intent, Policy } from '../../src/objects.js';
import { ZERO_DIGEST } from '../../src/primitives.js';
import type { Amount, Digest, Hex } from '../../src/types.js';

const key = (label: string) => sha256(utf8(`custos test vector key ${label}`));
const adminKey = key('admin');
const requesterKey = key('requester');
const approverKey = key('approver');

const policy: Policy = {
  v: 1,
  rules: [
    {
      id: 'small-to-book',
      match: { destination: { kind: 'address-book' }, maxAmount: '100000000' as Amount },
      action: 'allow',
      approvals: [{ m: 1, role: 'approver' }],
    },
    { id: 'deny-rest', match: { destination: { kind: 'any' } }, action: 'deny' },
  ],
  limits: [
    { id: 'daily', scope: 'wallet-asset', asset: 'BTC', windowMs: 86_400_000, max: '500000000' as Amount },
  ],
  feeCaps: [{ asset: 'BTC', maxFee: '100000' as Amount, maxFeeRate: '200' as Amount }],
  lookalike: { prefix: 4, suffix: 4, action: 'deny' },
};

const genesisBody: GenesisBody = {
  name: 'Vector Org',
  quorum: 1,
  delayMs: 86_400_000,
  members: [
    {
      id: 'ada',
      name: 'Ada Admin',
      roles: ['admin'],
      devices: [{ id: 'ada-laptop', kind: 'ed25519', publicKey: ed25519PublicKey(adminKey) }],
    },
    {
      id: 'rui',
      name: 'Rui Requester',
      roles: ['requester'],
      devices: [{ id: 'rui-phone', kind: 'ed25519', publicKey: ed25519PublicKey(requesterKey) }],
    },
    {
      id: 'ana',
      name: 'Ana Approver',
      roles: ['approver'],
      devices: [{ id: 'ana-phone', kind: 'ed25519', publicKey: ed25519PublicKey(approverKey) }],
    },
  ],
  policy,
  addresses: [
    {
      id: 'cold',
      chain: 'bitcoin:regtest',
      address: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' as never,
      label: 'Cold storage',
    },
  ],
  wallets: [],
  signers: [{ id: 'signer-1', publicKey: ed25519PublicKey(key('signer-1')) }],
};

const genesis: GovernanceEntry = {
  v: 1,
  org: ZERO_DIGEST,
  seq: 0,
  prev: ZERO_DIGEST,
  kind: 'genesis',
  body: genesisBody,
  proposedAt: 1_767_225_600_000,
};
const org = digestOf('governance', 1, genesis);

const intent: Intent = {
  v: 1,
  org,
  wallet: 'treasury',
  chain: 'bitcoin:regtest',
  asset: 'BTC',
  amount: '12500000' as Amount,
  to: 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080' as never,
  memo: 'Payroll – März',
  requester: 'rui',
  device: 'rui-phone',
  nonce: '000102030405060708090a0b0c0d0e0f' as Hex,
  createdAt: 1_767_225_600_000,
  expiresAt: 1_767_229_200_000,
};
const intentId = digestOf('intent', 1, intent);

const approval: Approval = {
  v: 1,
  intent: intentId,
  approver: 'ana',
  device: 'ana-phone',
  decision: 'approve',
  at: 1_767_225_700_000,
  expiresAt: 1_767_229_200_000,
};

const audit = {
  seq: 0,
  prev: ZERO_DIGEST,
  at: 1_767_225_600_001,
  actor: 'rui/rui-phone',
  event: 'intent.created',
  subject: intentId,
  digest: intentId,
};

const checkpoint = {
  v: 1 as const,
  org,
  signer: 'signer-1',
  seq: 0,
  head: digestOf('audit', 1, audit),
  at: 1_767_225_600_002,
};

interface Positive {
  name: string;
  schema: string;
  /** The digest type and version, or null for objects that have no digest of their own. */
  digestType: string | null;
  digestVersion: number | null;
  /** Valid but not canonical spelling (other key order, whitespace): decoders accept it. */
  input: string;
  canonical: string;
  digest: Digest | null;
}

function positive(name: string, schema: string, digestType: string | null, body: unknown): Positive {
  // A spelling that is valid JSON but not canonical: keys in reverse order, indented.
  const reversed = JSON.stringify(body, (_k, v) => reverseKeys(v), 1);
  return {
    name,
    schema,
    digestType,
    digestVersion: digestType === null ? null : 1,
    input: reversed,
    canonical: canonicalize(body),
    digest: digestType === null ? null : digestOf(digestType, 1, body),
  };
}

function reverseKeys(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).reverse());
}

const positives: Positive[] = [
  positive('genesis entry', 'governanceEntry', 'governance', genesis),
  positive('intent with a non-ASCII memo', 'intent', 'intent', intent),
  positive('signed intent', 'signedIntent', null, { intent, signature: signDigest(requesterKey, intentId) }),
  positive('approval', 'approval', 'approval', approval),
  positive('signed approval', 'signedApproval', null, {
    approval,
    signature: signDigest(approverKey, digestOf('approval', 1, approval)),
  }),
  positive('policy', 'policy', null, policy),
  positive('audit entry', 'auditEntry', 'audit', audit),
  positive('checkpoint', 'checkpoint', 'checkpoint', checkpoint),
];

const intentJson = canonicalize(intent);
const swap = (from: string, to: string) => intentJson.replace(from, to);

interface Negative {
  name: string;
  schema: string;
  input: string;
  code: string;
}

const negatives: Negative[] = [
  {
    name: 'duplicate key',
    schema: 'intent',
    input: intentJson.replace('{', '{"asset":"BTC",'),
    code: 'DUPLICATE_KEY',
  },
  {
    name: 'unknown field',
    schema: 'intent',
    input: intentJson.replace('{', '{"admin":true,'),
    code: 'UNKNOWN_FIELD',
  },
  { name: 'missing field', schema: 'intent', input: swap('"asset":"BTC",', ''), code: 'MISSING_FIELD' },
  { name: 'amount as a number', schema: 'intent', input: swap('"12500000"', '12500000'), code: 'WRONG_TYPE' },
  {
    name: 'amount with a leading zero',
    schema: 'intent',
    input: swap('"12500000"', '"012500000"'),
    code: 'NON_CANONICAL_AMOUNT',
  },
  {
    name: 'amount with a sign',
    schema: 'intent',
    input: swap('"12500000"', '"+12500000"'),
    code: 'NON_CANONICAL_AMOUNT',
  },
  {
    name: 'amount with an exponent',
    schema: 'intent',
    input: swap('"12500000"', '"125e5"'),
    code: 'NON_CANONICAL_AMOUNT',
  },
  {
    name: 'amount with a fraction',
    schema: 'intent',
    input: swap('"12500000"', '"0.125"'),
    code: 'NON_CANONICAL_AMOUNT',
  },
  { name: 'amount of zero', schema: 'intent', input: swap('"12500000"', '"0"'), code: 'INVALID_VALUE' },
  {
    name: 'amount over 78 digits',
    schema: 'intent',
    input: swap('"12500000"', `"${'9'.repeat(79)}"`),
    code: 'TOO_LARGE',
  },
  {
    name: 'time as a fraction',
    schema: 'intent',
    input: swap('1767225600000', '1767225600000.5'),
    code: 'NON_CANONICAL_NUMBER',
  },
  {
    name: 'time with an exponent',
    schema: 'intent',
    input: swap('1767225600000', '1.7672256e12'),
    code: 'NON_CANONICAL_NUMBER',
  },
  {
    name: 'time beyond 2^53',
    schema: 'intent',
    input: swap('1767229200000', '90071992547409930'),
    code: 'NON_CANONICAL_NUMBER',
  },
  { name: 'version 2', schema: 'intent', input: swap('"v":1', '"v":2'), code: 'INVALID_VALUE' },
  {
    name: 'upper-case hex digest',
    schema: 'intent',
    input: intentJson.replace(org, org.toUpperCase()),
    code: 'INVALID_VALUE',
  },
  {
    name: 'short nonce',
    schema: 'intent',
    input: swap('000102030405060708090a0b0c0d0e0f', '0001'),
    code: 'INVALID_VALUE',
  },
  { name: 'memo not in NFC', schema: 'intent', input: swap('März', 'Ma\\u0308rz'), code: 'NON_NFC_STRING' },
  {
    name: 'memo with a lone surrogate',
    schema: 'intent',
    input: swap('März', '\\ud800'),
    code: 'LONE_SURROGATE',
  },
  {
    name: 'memo over 512 characters',
    schema: 'intent',
    input: swap('Payroll', 'x'.repeat(600)),
    code: 'TOO_LARGE',
  },
  {
    name: 'expiry before creation',
    schema: 'intent',
    input: swap('1767229200000', '1767225500000'),
    code: 'INVALID_VALUE',
  },
  { name: 'trailing data', schema: 'intent', input: `${intentJson} {}`, code: 'TRAILING_DATA' },
  { name: 'not JSON', schema: 'intent', input: intentJson.slice(0, -1), code: 'INVALID_JSON' },
  {
    name: 'address with a space',
    schema: 'intent',
    input: swap('bcrt1qw508', 'bcrt1 qw508'),
    code: 'INVALID_VALUE',
  },
  {
    name: 'unknown approval decision',
    schema: 'approval',
    input: canonicalize(approval).replace('"approve"', '"abstain"'),
    code: 'INVALID_VALUE',
  },
  {
    name: 'unknown signature kind',
    schema: 'signedApproval',
    input: canonicalize({ approval, signature: { kind: 'rsa', sig: '00' } }),
    code: 'INVALID_VALUE',
  },
  {
    name: 'unknown governance kind',
    schema: 'governanceEntry',
    input: canonicalize({ ...genesis, kind: 'owner.swap' }),
    code: 'INVALID_VALUE',
  },
  {
    name: 'governance body of another kind',
    schema: 'governanceEntry',
    input: canonicalize({ ...genesis, kind: 'freeze' }),
    code: 'UNKNOWN_FIELD',
  },
  {
    name: 'allow rule without approvals',
    schema: 'policy',
    input: canonicalize({
      ...policy,
      rules: [{ id: 'r', match: { destination: { kind: 'any' } }, action: 'allow' }],
    }),
    code: 'INVALID_VALUE',
  },
];

const out = {
  note: 'Generated by packages/core/test/vectors/generate.ts; see README.md beside this file.',
  positives,
  negatives,
};
writeFileSync(new URL('./encoding.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${positives.length} positive and ${negatives.length} negative vectors`);
