/**
 * The objects people and signers sign: intents, approvals, governance
 * entries (with the policy and registry they carry), signer receipts and
 * audit entries. Each has a strict schema and a digest
 * sha256("custos/<type>/v<n>\n" || JCS(body)).
 *
 * Signatures are never part of the body they sign: a signed object is
 * `{ <name>: body, signature(s) }`.
 */
import {
  chainAddressProblem,
  evmAddress,
  evmChain,
  evmChainId,
  isEvmChain,
  reservedSafeAddress,
} from './evm.js';
import { digestOf } from './jcs.js';
import {
  address,
  amount,
  base64url,
  chain,
  digest,
  duration,
  hexBytes,
  hexOfMaxBytes,
  id,
  ids,
  label,
  millis,
  nonce,
  text,
} from './primitives.js';
import {
  array,
  type Infer,
  int,
  literal,
  object,
  oneOf,
  type Problem,
  refine,
  type Schema,
  string,
  tagged,
} from './schema.js';
import type { Digest } from './types.js';

// ---------------------------------------------------------------- devices

/** An Ed25519 device key, registered by governance. */
export const ed25519Device = object({
  id,
  kind: literal('ed25519'),
  publicKey: hexBytes(32, 'Ed25519 public key'),
});

/** A WebAuthn passkey (ES256 / P-256), registered by governance. */
export const webauthnDevice = object({
  id,
  kind: literal('webauthn'),
  credentialId: base64url(1400),
  publicKey: hexOfMaxBytes(65),
  rpId: string({ min: 1, max: 253, pattern: /^[a-z0-9.-]+$/ }),
  origin: string({ min: 1, max: 512, pattern: /^https?:\/\/[^/\s]+$/ }),
});

export const device = tagged('kind', { ed25519: ed25519Device, webauthn: webauthnDevice });
export type Device = Infer<typeof device>;

export const ed25519Signature = object({ kind: literal('ed25519'), sig: hexBytes(64) });
export const webauthnSignature = object({
  kind: literal('webauthn'),
  authenticatorData: base64url(2048),
  clientDataJSON: base64url(4096),
  signature: base64url(256),
});
export const deviceSignature = tagged('kind', { ed25519: ed25519Signature, webauthn: webauthnSignature });
export type DeviceSignature = Infer<typeof deviceSignature>;

// ---------------------------------------------------------------- intent

/**
 * The most outputs a batch intent's schema accepts: a bound on the bytes a
 * decoder reads, not the governed maximum. A policy's `maxBatchOutputs`
 * (default {@link DEFAULT_MAX_BATCH_OUTPUTS}) is what a verifier enforces.
 * 1000 P2WPKH outputs are about 31,000 virtual bytes, well under Bitcoin
 * Core's 100,000-vbyte standardness bound.
 */
export const MAX_BATCH_OUTPUTS = 1000;

/** The batch size a verifier allows when no policy in force names `maxBatchOutputs` (issue 13). */
export const DEFAULT_MAX_BATCH_OUTPUTS = 250;

/** One payment of a batch intent. */
export const payout = object({ to: address, amount }, {}, 'One output of a batch intent.');
export type Payout = Infer<typeof payout>;

/**
 * The highest receive index an internal transfer may name (issue 13), so
 * 0..999. Wallets, the coordinator's scanner and any wallet restored from the
 * descriptor look for receive addresses a gap limit past the last one used;
 * coins sent far beyond it are not lost (the keys derive the address) but no
 * balance, scan or watcher sees them until someone widens the search. A
 * signer cannot know which receive indexes deposits used, so the bound is
 * absolute: small enough that the coordinator watches up to it cheaply (it
 * derives the destination wallet's receive branch up to the index plus its
 * gap when it builds), large enough for a refill a day for years when each
 * takes the next unused index (a reused internal address is harmless: both
 * sides are the organization's own).
 */
export const MAX_INTERNAL_RECEIVE_INDEX = 999;

/**
 * The destination wallet an internal transfer claims (issue 13): a governed
 * wallet and, for Bitcoin, the receive index (branch 0 of its descriptor)
 * whose address `to` must be. A Safe has one address, its own, so no index.
 * The claim is signed with the intent, and proven by every verifier that lets
 * it authorize anything (policy.ts step 3b, internal-transfer.ts).
 */
export const internalDestination = object(
  { wallet: id },
  { index: int({ min: 0, max: MAX_INTERNAL_RECEIVE_INDEX }) },
  'The governed wallet an internal transfer pays, and for Bitcoin the receive index of `to` in it.',
);
export type InternalDestination = Infer<typeof internalDestination>;

/**
 * An intent pays one destination (`to`, `amount`) or, with `outputs`, a
 * batch (issue 13). A batch keeps `to` and `amount`, bound to the list:
 * `amount` is the exact sum of the outputs and `to` the first output's
 * destination. So an intent without `outputs` is byte-for-byte what it was
 * (same fields, same digest), and a verifier that ignored `outputs` would
 * still fail closed: it would expect one output of the total to the first
 * destination, which no batch transaction has (UNEXPECTED_OUTPUT).
 * `outputs` holds 2 to MAX_BATCH_OUTPUTS entries, in the order signed (the
 * digest covers it); the same destination may appear twice.
 */
export const intent = refine(
  object(
    {
      v: literal(1),
      org: digest,
      wallet: id,
      chain,
      asset: id,
      amount,
      to: address,
      requester: id,
      device: id,
      nonce,
      createdAt: millis,
      expiresAt: millis,
    },
    {
      memo: text,
      outputs: array(payout, { min: 2, max: MAX_BATCH_OUTPUTS }),
      toWallet: internalDestination,
    },
    'A requested transfer, signed on the requester device.',
  ),
  (i) => {
    if (i.amount === '0') return 'amount must be greater than zero';
    if (i.expiresAt <= i.createdAt) return 'expiresAt must be after createdAt';
    if (i.toWallet !== undefined) {
      const problem = internalDestinationProblem(i.chain, i.toWallet, i.outputs !== undefined);
      if (problem !== undefined) return problem;
    }
    if (i.outputs !== undefined) return batchProblem(i.chain, i.to, i.amount, i.outputs);
    // On an EVM chain the destination is signed in its one EIP-55 spelling (evm.ts).
    return chainAddressProblem(i.chain, i.to, 'to');
  },
);

/** What the schema can tell of an internal transfer's claim without governance (its shape per chain). */
function internalDestinationProblem(
  chain: string,
  dest: InternalDestination,
  batch: boolean,
): Problem | undefined {
  const bad = (field: string, message: string): Problem => ({ code: 'INVALID_VALUE', message, field });
  if (batch) return bad('toWallet', 'an internal transfer pays one wallet: no outputs');
  if (isEvmChain(chain)) {
    if (dest.index !== undefined) return bad('toWallet.index', 'a Safe has one address: no index');
  } else if (dest.index === undefined) {
    return bad('toWallet.index', "a Bitcoin wallet's receive index is required");
  }
  return undefined;
}

function batchProblem(
  chain: string,
  to: string,
  total: string,
  outputs: readonly Payout[],
): string | Problem | undefined {
  // A Safe transaction pays one recipient; batches are Bitcoin only.
  if (isEvmChain(chain)) return 'outputs: a batch is for Bitcoin wallets only';
  let sum = 0n;
  for (const [n, o] of outputs.entries()) {
    if (o.amount === '0') return `outputs[${n}].amount must be greater than zero`;
    const problem = chainAddressProblem(chain, o.to, `outputs[${n}].to`);
    if (problem !== undefined) return problem;
    sum += BigInt(o.amount);
  }
  if (BigInt(total) !== sum) return `amount must be the sum of the outputs (${sum})`;
  if (outputs[0]?.to !== to) return "to must be the first output's destination";
  return undefined;
}
export type Intent = Infer<typeof intent>;

export const signedIntent = object({ intent, signature: deviceSignature });
export type SignedIntent = Infer<typeof signedIntent>;

/** The payments an intent makes, in the order signed: its `outputs`, or its one `to` and `amount`. */
export function intentOutputs(i: Pick<Intent, 'to' | 'amount' | 'outputs'>): readonly Payout[] {
  return i.outputs ?? [{ to: i.to, amount: i.amount }];
}

export function intentDigest(i: Intent): Digest {
  return digestOf('intent', 1, i);
}

// ---------------------------------------------------------------- approval

export const approval = refine(
  object(
    {
      v: literal(1),
      intent: digest,
      approver: id,
      device: id,
      decision: oneOf(['approve', 'reject'] as const),
      at: millis,
      expiresAt: millis,
    },
    {},
    "An approver's decision on one intent digest.",
  ),
  (a) => (a.expiresAt <= a.at ? 'expiresAt must be after at' : undefined),
);
export type Approval = Infer<typeof approval>;

export const signedApproval = object({ approval, signature: deviceSignature });
export type SignedApproval = Infer<typeof signedApproval>;

export function approvalDigest(a: Approval): Digest {
  return digestOf('approval', 1, a);
}

// ---------------------------------------------------------------- policy

export const approvalGroup = refine(
  object({ m: int({ min: 1, max: 100 }) }, { members: ids(100), role: id }),
  (g) => {
    if ((g.members === undefined) === (g.role === undefined)) return 'a group names either members or a role';
    if (g.members !== undefined && g.members.length < g.m)
      return 'a group cannot need more members than it names';
    return undefined;
  },
);
export type ApprovalGroup = Infer<typeof approvalGroup>;

export const destinationMatch = tagged('kind', {
  any: object({ kind: literal('any') }),
  'address-book': object({ kind: literal('address-book') }),
  entries: object({ kind: literal('entries'), ids: ids(1000) }),
  tags: object({ kind: literal('tags'), tags: ids(100) }),
  /**
   * Internal transfers (issue 13): the intent names one of these governed
   * wallets in `toWallet`, and `to` is proven to be its address (policy.ts
   * step 3b) before the rule is matched. Never matches an external address.
   */
  wallets: object({ kind: literal('wallets'), wallets: ids(1000) }),
});
export type DestinationMatch = Infer<typeof destinationMatch>;

export const ruleMatch = object(
  { destination: destinationMatch },
  {
    wallets: ids(1000),
    assets: ids(1000),
    minAmount: amount,
    maxAmount: amount,
    requesterRoles: ids(100),
  },
);

/**
 * A rule: what it matches, and deny, or allow with approval groups and an
 * optional cancel window. `approvals: []` is an automated tier (issue 13):
 * it allows with no human approval, so a policy holding one must bound it
 * ({@link automationProblem}). The list is never implied: an allow rule
 * without `approvals` is refused, so "no approvals" is always written down.
 */
export const policyRule = refine(
  object(
    { id, match: ruleMatch, action: oneOf(['allow', 'deny'] as const) },
    { approvals: array(approvalGroup, { max: 10 }), cancelWindowMs: duration },
  ),
  (r) => {
    if (r.action === 'allow' && r.approvals === undefined) {
      return 'an allow rule needs approval groups (an automated rule says approvals: [])';
    }
    if (r.action === 'deny' && (r.approvals !== undefined || r.cancelWindowMs !== undefined)) {
      return 'a deny rule takes no approvals or cancel window';
    }
    return undefined;
  },
);
export type PolicyRule = Infer<typeof policyRule>;

export const rollingLimit = object(
  {
    id,
    scope: oneOf(['wallet-asset', 'destination', 'requester'] as const),
    asset: id,
    windowMs: refine(duration, (d) => (d === 0 ? 'window must be longer than zero' : undefined)),
    max: amount,
  },
  { wallet: id },
  'A rolling-window limit: the sum signed in the last windowMs, per wallet and asset, per destination or per requester.',
);
export type RollingLimit = Infer<typeof rollingLimit>;

export const feeCap = object(
  { asset: id, maxFee: amount, maxFeeRate: amount },
  { wallet: id },
  'maxFee in base units; maxFeeRate in base units per virtual byte (Bitcoin) or per gas (EVM).',
);
export type FeeCap = Infer<typeof feeCap>;

function positiveDuration(d: number): string | undefined {
  return d === 0 ? 'a lifetime must be longer than zero' : undefined;
}

/**
 * Lifetimes when a policy names none: a day for an intent and for an
 * approval. An intent valid for ten years is a standing order nobody reviews
 * again (issue 8, item 3); a day covers a working day across time zones.
 */
export const DEFAULT_LIFETIMES = { intentMs: 86_400_000, approvalMs: 86_400_000 } as const;

/**
 * Whether a rule allows with no approval at all: an automated tier, such as
 * an exchange's customer payouts requested by its backend (issue 13).
 */
export function isAutomatedRule(rule: PolicyRule): boolean {
  return rule.action === 'allow' && rule.approvals !== undefined && rule.approvals.length === 0;
}

/**
 * UNBOUNDED_AUTOMATION: an automated rule (no approvals) must be bounded by
 * the policy itself, or one stolen requester key (a service's, on a server)
 * drains the wallet with nobody in the loop (Coincheck 2018, CoinEx 2023:
 * hot keys emptied, found hours later). Bounded means:
 * - a per-transaction maximum, `match.maxAmount`;
 * - for each asset the rule names (`match.assets`) and each wallet it can
 *   pay from, a rolling limit of scope `wallet-asset` in the same policy:
 *   one without a `wallet` (it binds every wallet, each on its own) or one
 *   naming that wallet; a rule naming no wallets needs the former, so a
 *   wallet added later is covered too.
 * A rule naming no assets covers every asset of its wallets, which only
 * governance knows: here it needs at least one wallet-asset limit that can
 * apply, and {@link automationWalletProblem} checks every wallet and asset
 * when the policy is set and when a wallet is added.
 * Per-destination and per-requester limits are welcome on top but do not
 * count: a thief pays as many destinations as he likes. Each signer sums the
 * limits from its own ledger, so what the key can get signed is at most the
 * smallest limit per window, whatever the coordinator does. The check
 * depends on the policy alone, so it is made wherever a policy is decoded:
 * a genesis, a `policy.set` proposal at the HTTP edge, every signer reading
 * governance.
 */
export function automationProblem(p: {
  readonly rules: readonly PolicyRule[];
  readonly limits: readonly RollingLimit[];
}): Problem | undefined {
  for (const [i, rule] of p.rules.entries()) {
    if (!isAutomatedRule(rule)) continue;
    const unbounded = (field: string, why: string): Problem => ({
      code: 'UNBOUNDED_AUTOMATION',
      message: `rule ${rule.id} allows with no approval, so ${why}`,
      field: `rules[${i}].${field}`,
    });
    const { match } = rule;
    if (match.maxAmount === undefined) {
      return unbounded('match.maxAmount', 'it needs a per-transaction maximum (match.maxAmount)');
    }
    if (match.assets === undefined) {
      const some = p.limits.some(
        (l) =>
          l.scope === 'wallet-asset' &&
          (l.wallet === undefined || match.wallets?.includes(l.wallet) === true),
      );
      if (!some)
        return unbounded('match', 'it needs a wallet-asset rolling limit for its wallets and assets');
      continue;
    }
    for (const asset of match.assets) {
      const covering = p.limits.filter((l) => l.scope === 'wallet-asset' && l.asset === asset);
      if (match.wallets === undefined) {
        if (!covering.some((l) => l.wallet === undefined)) {
          return unbounded(
            'match.wallets',
            `it pays from any wallet and needs a wallet-asset rolling limit for ${asset} that names no wallet`,
          );
        }
        continue;
      }
      for (const w of match.wallets) {
        if (!covering.some((l) => l.wallet === undefined || l.wallet === w)) {
          return unbounded(
            'match',
            `it needs a wallet-asset rolling limit for wallet ${w} and asset ${asset}`,
          );
        }
      }
    }
  }
  return undefined;
}

/**
 * The rest of {@link automationProblem}, with the wallets governance holds:
 * an automated rule that names no assets pays any asset of the wallets it
 * can pay from (those it names, or every wallet), so each of those wallets'
 * assets needs a wallet-asset rolling limit (one naming no wallet, or that
 * wallet). Checked when a policy is set (genesis, policy.set) against the
 * wallets then, and when a wallet is added against the policies in force.
 */
export function automationWalletProblem(
  p: { readonly rules: readonly PolicyRule[]; readonly limits: readonly RollingLimit[] },
  wallets: Iterable<{ readonly id: string; readonly assets: readonly string[] }>,
): Problem | undefined {
  const all = [...wallets];
  for (const [i, rule] of p.rules.entries()) {
    if (!isAutomatedRule(rule) || rule.match.assets !== undefined) continue;
    const named = rule.match.wallets;
    for (const w of all) {
      if (named !== undefined && !named.includes(w.id)) continue;
      for (const asset of w.assets) {
        const covered = p.limits.some(
          (l) =>
            l.scope === 'wallet-asset' && l.asset === asset && (l.wallet === undefined || l.wallet === w.id),
        );
        if (!covered) {
          return {
            code: 'UNBOUNDED_AUTOMATION',
            message: `rule ${rule.id} allows with no approval and pays any asset of wallet ${w.id}, so it needs a wallet-asset rolling limit for ${asset} there`,
            field: `rules[${i}].match`,
          };
        }
      }
    }
  }
  return undefined;
}

export const policy = refine(
  object(
    {
      v: literal(1),
      rules: array(policyRule, { max: 200 }),
      limits: array(rollingLimit, { max: 200 }),
      feeCaps: array(feeCap, { max: 200 }),
      lookalike: object({
        prefix: int({ min: 1, max: 64 }),
        suffix: int({ min: 1, max: 64 }),
        action: oneOf(['deny', 'warn'] as const),
      }),
    },
    {
      maxBatchOutputs: int({ min: 2, max: MAX_BATCH_OUTPUTS }),
      lifetimes: object(
        {
          intentMs: refine(duration, positiveDuration),
          approvalMs: refine(duration, positiveDuration),
        },
        {},
        'The longest an intent (expiresAt - createdAt) and an approval (expiresAt - at) may live; DEFAULT_LIFETIMES when absent.',
      ),
    },
    'Ordered rules, first match wins, default deny; limits and fee caps apply on top.',
  ),
  automationProblem,
);
export type Policy = Infer<typeof policy>;

// ---------------------------------------------------------------- registry

export const addressEntry = refine(
  object(
    { id, chain, address, label },
    { tags: ids(50) },
    'An address-book entry: a destination the organization may pay. On an eip155 chain the address is EIP-55 checksummed.',
  ),
  (a) => chainAddressProblem(a.chain, a.address, 'address'),
);
export type AddressEntry = Infer<typeof addressEntry>;

/** Asset symbols are shown to people next to amounts, so only plain ASCII (no look-alike letters). */
const symbol = string({
  min: 1,
  max: 16,
  pattern: /^[A-Za-z0-9][A-Za-z0-9.$_-]*$/,
  description: 'ticker symbol as the organization shows it, ASCII letters, digits and . $ _ -',
});

/** Digits after the decimal point of one whole unit: 8 for BTC, 18 for ETH, 6 for USDT. */
const decimals = int({
  min: 0,
  max: 77,
  description: 'decimals of one whole unit (base units = 10^decimals)',
});

export const nativeAsset = object(
  { id, chain, kind: literal('native'), symbol, decimals },
  {},
  "A chain's own coin (ETH on eip155:1, BTC on bitcoin:mainnet).",
);

export const erc20Asset = object(
  { id, chain: evmChain, kind: literal('erc20'), contract: evmAddress, symbol, decimals },
  {},
  'An ERC-20 token: its contract on one EVM chain; amounts in its base units.',
);

/**
 * An entry of the asset registry (issue 9): what an asset id in an intent, a
 * wallet, a limit or a fee cap means on its chain. Amounts are always in base
 * units; `decimals` is for people (`1.5usdt` is 1,500,000). An ERC-20 is
 * named by its contract, never by its symbol: anyone can deploy a token that
 * calls itself USDT.
 */
export const asset = refine(tagged('kind', { native: nativeAsset, erc20: erc20Asset }), (a) =>
  isEvmChain(a.chain) && evmChainId(a.chain) === undefined
    ? {
        code: 'INVALID_VALUE',
        message: 'an eip155 chain id is a decimal number from 1 to 2^53 - 1',
        field: 'chain',
      }
    : undefined,
);
export type Asset = Infer<typeof asset>;

export const bitcoinWallet = object(
  {
    id,
    label,
    chain,
    assets: ids(100),
    kind: literal('bitcoin-wsh-sortedmulti'),
    descriptor: string({ min: 1, max: 4096, pattern: /^[\x20-\x7e]+$/ }),
  },
  {},
  'A Bitcoin wallet: a wsh(sortedmulti(...)) output descriptor with receive /0/* and change /1/*.',
);
export type BitcoinWallet = Infer<typeof bitcoinWallet>;

/** A Safe owner: a governed signer and the EVM address of its secp256k1 key (its signer record's evmAddress). */
export const safeOwner = object({ signer: id, address: evmAddress });
export type SafeOwner = Infer<typeof safeOwner>;

/** keccak-256 of the singleton's runtime code (what `EXTCODEHASH` returns), 0x and 64 lower-case hex digits. */
const codeHash = string({
  min: 66,
  max: 66,
  pattern: /^0x[0-9a-f]{64}$/,
  description: "keccak-256 of the singleton's runtime code, 0x and 64 lower-case hex digits",
});

/**
 * A Safe (issue 9) as governance pins it, everything a signer compares with
 * the chain before it signs (SAFE_STATE_MISMATCH): the proxy's address, the
 * singleton it delegates to and that code's hash (Bybit 2025 and WazirX 2024
 * replaced the singleton), owners, threshold, fallback handler. Modules and a
 * guard are absent unless governed explicitly: a module moves funds without
 * the owners, so "none" is the default and the only spelling of none.
 */
export const evmSafeWallet = object(
  {
    id,
    label,
    chain: evmChain,
    assets: ids(100),
    kind: literal('evm-safe'),
    address: evmAddress,
    singleton: evmAddress,
    singletonCodeHash: codeHash,
    owners: array(safeOwner, { min: 1, max: 50 }),
    threshold: int({ min: 1, max: 50 }),
    fallbackHandler: evmAddress,
  },
  { modules: array(evmAddress, { min: 1, max: 10, unique: true }), guard: evmAddress },
  'A Safe multisig on an EVM chain; `modules` absent means none, `guard` absent means the zero address.',
);
export type EvmSafeWallet = Infer<typeof evmSafeWallet>;

/** What a Safe's own contract would refuse, or what only a mistake would write; the first problem found. */
function safeProblem(w: EvmSafeWallet): Problem | undefined {
  const bad = (field: string, message: string): Problem => ({ code: 'INVALID_VALUE', message, field });
  if (w.threshold > w.owners.length) {
    return bad(
      'threshold',
      `a threshold of ${w.threshold} needs at least as many owners, there are ${w.owners.length}`,
    );
  }
  const signers = new Set<string>();
  const addresses = new Set<string>();
  for (const [i, o] of w.owners.entries()) {
    if (signers.has(o.signer)) return bad(`owners[${i}].signer`, `signer ${o.signer} is listed twice`);
    if (addresses.has(o.address)) return bad(`owners[${i}].address`, `owner ${o.address} is listed twice`);
    signers.add(o.signer);
    addresses.add(o.address);
    if (reservedSafeAddress(o.address))
      return bad(`owners[${i}].address`, 'the zero address and the sentinel cannot own a Safe');
    if (o.address === w.address) return bad(`owners[${i}].address`, 'a Safe cannot own itself');
  }
  if (reservedSafeAddress(w.singleton) || w.singleton === w.address) {
    return bad(
      'singleton',
      'the singleton is a deployed Safe implementation, not zero, the sentinel or the Safe itself',
    );
  }
  if (w.fallbackHandler === w.address)
    return bad('fallbackHandler', 'a Safe cannot be its own fallback handler');
  for (const [i, m] of (w.modules ?? []).entries()) {
    if (reservedSafeAddress(m))
      return bad(`modules[${i}]`, 'the zero address and the sentinel are not modules');
  }
  if (w.guard !== undefined && reservedSafeAddress(w.guard)) {
    return bad('guard', 'no guard is spelled by leaving guard out');
  }
  return undefined;
}

/**
 * A wallet, told apart by `kind`. The Bitcoin variant is exactly the wallet
 * object as it was before EVM support, so genesis entries signed then still
 * parse and keep their digests.
 */
export const wallet = refine(
  tagged('kind', { 'bitcoin-wsh-sortedmulti': bitcoinWallet, 'evm-safe': evmSafeWallet }),
  (w) => (w.kind === 'evm-safe' ? safeProblem(w) : undefined),
);
export type Wallet = Infer<typeof wallet>;

/** Narrows a wallet to the Bitcoin kind, for the code that reads its descriptor. */
export function isBitcoinWallet(w: Wallet): w is BitcoinWallet {
  return w.kind === 'bitcoin-wsh-sortedmulti';
}

/** Narrows a wallet to a Safe. */
export function isSafeWallet(w: Wallet): w is EvmSafeWallet {
  return w.kind === 'evm-safe';
}

export const signerRecord = object(
  { id, publicKey: hexBytes(32, 'Ed25519 identity key of the signer (receipts, checkpoints)') },
  {
    label,
    evmAddress,
  },
  'A signer: its Ed25519 identity key and, if it signs for Safes, the EVM address of its secp256k1 key.',
);
export type SignerRecord = Infer<typeof signerRecord>;

export const role = id;
export const member = object({
  id,
  name: label,
  roles: array(role, { max: 20, unique: true }),
  devices: array(device, { max: 20 }),
});
export type Member = Infer<typeof member>;

// ---------------------------------------------------------------- governance

const quorum = int({ min: 1, max: 100 });

export const genesisBody = object(
  {
    name: label,
    quorum,
    delayMs: duration,
    members: array(member, { min: 1, max: 1000 }),
    policy,
    addresses: array(addressEntry, { max: 10_000 }),
    wallets: array(wallet, { max: 1000 }),
    signers: array(signerRecord, { max: 100 }),
  },
  // Optional so that genesis bodies signed before the registry existed still parse, with their digests.
  { assets: array(asset, { max: 1000 }) },
);
export type GenesisBody = Infer<typeof genesisBody>;

/** Body schema of each governance kind. */
export const governanceBodies = {
  genesis: genesisBody,
  'member.add': member,
  'member.remove': object({ member: id }),
  'device.add': object({ member: id, device }),
  'device.revoke': object({ member: id, device: id }),
  'role.set': object({ member: id, roles: array(role, { max: 20, unique: true }) }),
  'policy.set': object({ policy }),
  'address.add': addressEntry,
  'address.remove': object({ id }),
  'wallet.add': wallet,
  'asset.add': asset,
  'asset.remove': object({ id }),
  'signer.add': signerRecord,
  'signer.remove': object({ id }),
  'quorum.set': object({ quorum, delayMs: duration }),
  freeze: object({ reason: text }),
  unfreeze: object({ reason: text }),
} as const;

export type GovernanceKind = keyof typeof governanceBodies;
export const GOVERNANCE_KINDS = Object.keys(governanceBodies) as GovernanceKind[];

function entryVariant<K extends GovernanceKind>(kind: K) {
  return object({
    v: literal(1),
    org: digest,
    seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    prev: digest,
    kind: literal(kind),
    body: governanceBodies[kind] as (typeof governanceBodies)[K],
    proposedAt: millis,
  });
}

export const governanceEntry = tagged('kind', {
  genesis: entryVariant('genesis'),
  'member.add': entryVariant('member.add'),
  'member.remove': entryVariant('member.remove'),
  'device.add': entryVariant('device.add'),
  'device.revoke': entryVariant('device.revoke'),
  'role.set': entryVariant('role.set'),
  'policy.set': entryVariant('policy.set'),
  'address.add': entryVariant('address.add'),
  'address.remove': entryVariant('address.remove'),
  'wallet.add': entryVariant('wallet.add'),
  'asset.add': entryVariant('asset.add'),
  'asset.remove': entryVariant('asset.remove'),
  'signer.add': entryVariant('signer.add'),
  'signer.remove': entryVariant('signer.remove'),
  'quorum.set': entryVariant('quorum.set'),
  freeze: entryVariant('freeze'),
  unfreeze: entryVariant('unfreeze'),
});
export type GovernanceEntry = Infer<typeof governanceEntry>;
export type GovernanceEntryOf<K extends GovernanceKind> = Extract<GovernanceEntry, { kind: K }>;

/** One admin's (or, for a freeze, a watcher's) signature on an entry digest. */
export const governanceSignature = object({ member: id, device: id, signature: deviceSignature });
export type GovernanceSignature = Infer<typeof governanceSignature>;

export const signedGovernanceEntry = object({
  entry: governanceEntry,
  signatures: array(governanceSignature, { min: 1, max: 100 }),
});
export type SignedGovernanceEntry = Infer<typeof signedGovernanceEntry>;

export function governanceDigest(e: GovernanceEntry): Digest {
  return digestOf('governance', 1, e);
}

// ---------------------------------------------------------------- ledger, receipts, audit

/** What a signer records of each transfer it signed; rolling limits are summed over these. */
/**
 * What a verifier signed, one entry per intent: `amount` the intent's total
 * and `to` its first destination, as in the intent; a batch also carries its
 * `outputs`, so the destination limits and FIRST_PAYMENT see every output
 * (ledger.ts, {@link ledgerContributions}). An entry without `outputs` is
 * what it always was.
 */
export const ledgerEntry = object(
  {
    intent: digest,
    wallet: id,
    asset: id,
    amount,
    to: address,
    requester: id,
    at: millis,
  },
  { outputs: array(payout, { min: 2, max: MAX_BATCH_OUTPUTS }) },
);
export type LedgerEntry = Infer<typeof ledgerEntry>;

export const auditEntry = object({
  seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  prev: digest,
  at: millis,
  actor: string({ min: 1, max: 128 }),
  event: string({ min: 1, max: 64, pattern: /^[a-z][a-z0-9._-]*$/ }),
  subject: string({ max: 128 }),
  digest,
});
export type AuditEntry = Infer<typeof auditEntry>;

export function auditEntryDigest(e: AuditEntry): Digest {
  return digestOf('audit', 1, e);
}

export const checkpoint = object({
  v: literal(1),
  org: digest,
  signer: id,
  seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  head: digest,
  at: millis,
});
export type Checkpoint = Infer<typeof checkpoint>;

export const signedCheckpoint = object({ checkpoint, signature: hexBytes(64) });
export type SignedCheckpoint = Infer<typeof signedCheckpoint>;

export function checkpointDigest(c: Checkpoint): Digest {
  return digestOf('checkpoint', 1, c);
}

export type { Schema };
