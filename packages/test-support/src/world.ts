/**
 * A complete little world for signer tests: the fixture organization of
 * core's tests, with a real 2-of-3 wallet descriptor whose keys are three BIP
 * 32 seeds (two signers and an offline backup), real funding transactions,
 * real intents and approvals signed by their devices, and real PSBTs built by
 * @custos/bitcoin. Nothing is mocked; tests change bytes the way an attacker
 * in the middle would.
 */
import {
  type BuiltPsbt,
  buildPsbt,
  type DescriptorKey,
  descriptorKeyOf,
  formatDescriptor,
  psbtToBase64,
  type SignerKey,
  type WalletUtxo,
  walletFromKeys,
} from '@custos/bitcoin';
import {
  type Amount,
  type Approval,
  approvalDigest,
  type Digest,
  type GovernanceState,
  type Hex,
  type Intent,
  intentDigest,
  type Millis,
  type Policy,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
  type SignerJob,
  signDigest,
  toHex,
  type BitcoinWallet as Wallet,
} from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { COLD_STORAGE, createOrg, defaultPolicy, type Org, type Person, T0 } from './org.js';
import { fundingTx, signers as seedSigners } from './psbt-fixtures.js';

export { COLD_STORAGE, T0 };
export const MINUTE = 60_000;

export interface World {
  readonly org: Org;
  readonly keys: readonly SignerKey[];
  readonly wallet: Wallet;
  readonly descriptor: ReturnType<typeof walletFromKeys>;
  /** A clock the test moves; the signer reads it. */
  readonly clock: { now: Millis };
  intent(amount: bigint, opts?: Partial<Intent> & { by?: Person }): SignedIntent;
  approve(intent: SignedIntent, by?: readonly Person[], opts?: Partial<Approval>): SignedApproval[];
  utxos(values: readonly bigint[]): WalletUtxo[];
  build(
    intent: SignedIntent,
    opts?: { utxos?: readonly WalletUtxo[]; feeRate?: bigint; changeIndex?: number },
  ): BuiltPsbt;
  job(
    intent: SignedIntent,
    approvals: readonly SignedApproval[],
    psbt: Uint8Array,
    opts?: { id?: string; signer?: string; state?: GovernanceState },
  ): SignerJob;
  /** A fully approved withdrawal of `amount` sat to the cold-storage address, ready for a signer. */
  withdrawal(
    amount: bigint,
    opts?: { id?: string; inputs?: number },
  ): { job: SignerJob; intent: SignedIntent; built: BuiltPsbt; digest: Digest };
  governance: SignedGovernanceEntry[];
}

let nonceCounter = 0;

export function makeWorld(
  opts: {
    policy?: (p: Policy) => Policy;
    delayMs?: number;
    firstKey?: DescriptorKey;
    secondKey?: DescriptorKey;
  } = {},
): World {
  const keys = seedSigners;
  const descriptorKeys = keys.map((k) => descriptorKeyOf(k, 'regtest'));
  // A signer process with its own keystore takes the first seat of the 2-of-3.
  if (opts.firstKey !== undefined) descriptorKeys[0] = opts.firstKey;
  if (opts.secondKey !== undefined) descriptorKeys[1] = opts.secondKey;
  const descriptor = walletFromKeys(2, descriptorKeys, 'regtest');
  const wallet: Wallet = {
    id: 'btc-main',
    label: 'Main BTC (regtest)',
    chain: 'bitcoin:regtest',
    assets: ['BTC'],
    kind: 'bitcoin-wsh-sortedmulti',
    descriptor: formatDescriptor(descriptor, 0),
  };
  const base = defaultPolicy(wallet.id);
  const org = createOrg({
    wallet,
    policy: opts.policy === undefined ? base : opts.policy(base),
    ...(opts.delayMs === undefined ? {} : { delayMs: opts.delayMs }),
  });
  const clock = { now: T0 + MINUTE };
  let utxoNonce = 0;

  const world: World = {
    org,
    keys,
    wallet,
    descriptor,
    clock,
    governance: [org.genesis],
    intent(amount, o = {}) {
      const by = o.by ?? org.requester;
      const body: Intent = {
        v: 1,
        org: org.orgId,
        wallet: wallet.id,
        chain: wallet.chain,
        asset: 'BTC',
        amount: amount.toString() as Amount,
        to: COLD_STORAGE,
        requester: by.id,
        device: by.device.id,
        nonce: toHex(sha256(new TextEncoder().encode(`nonce ${nonceCounter++}`))).slice(0, 32) as Hex,
        createdAt: clock.now - 1000,
        expiresAt: clock.now + 3_600_000,
        ...Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'by')),
      };
      return { intent: body, signature: signDigest(by.device.secretKey, intentDigest(body)) };
    },
    approve(intent, by = org.approvers.slice(0, 2), o = {}) {
      const digest = intentDigest(intent.intent);
      return by.map((p) => {
        const a: Approval = {
          v: 1,
          intent: digest,
          approver: p.id,
          device: p.device.id,
          decision: 'approve',
          at: clock.now - 500,
          expiresAt: clock.now + 3_600_000,
          ...o,
        };
        return { approval: a, signature: signDigest(p.device.secretKey, approvalDigest(a)) };
      });
    },
    utxos(values) {
      const pays = values.map((value, index) => ({ w: descriptor, branch: 0 as const, index, value }));
      const funding = fundingTx(pays, 1_000_000 + utxoNonce++);
      return values.map((value, index) => ({
        txid: funding.txid,
        vout: index,
        value,
        branch: 0 as const,
        index,
        prevTx: funding.raw,
      }));
    },
    build(intent, o = {}) {
      const amount = BigInt(intent.intent.amount);
      const built = buildPsbt({
        wallet: descriptor,
        utxos: o.utxos ?? world.utxos([amount + 50_000n]),
        to: intent.intent.to,
        amount,
        ...(intent.intent.outputs === undefined
          ? {}
          : { outputs: intent.intent.outputs.map((p) => ({ to: p.to, amount: BigInt(p.amount) })) }),
        feeRate: o.feeRate ?? 5n,
        changeIndex: o.changeIndex ?? 0,
      });
      if (!built.ok) throw new Error(`build failed: ${built.code} ${built.message}`);
      return built.value;
    },
    job(intent, approvals, psbt, o = {}) {
      const state = o.state ?? org.state;
      return {
        v: 1,
        id: o.id ?? `job-${nonceCounter++}`,
        signer: o.signer ?? 'signer-1',
        intent,
        approvals: [...approvals],
        governance: { seq: state.seq, digest: state.head },
        psbt: psbtToBase64(psbt),
      };
    },
    withdrawal(amount, o = {}) {
      const intent = world.intent(amount);
      const inputs = o.inputs ?? 1;
      const each = amount / BigInt(inputs) + 20_000n;
      const built = world.build(intent, { utxos: world.utxos(Array.from({ length: inputs }, () => each)) });
      const approvals = world.approve(intent);
      return {
        job: world.job(intent, approvals, built.psbt, o.id === undefined ? {} : { id: o.id }),
        intent,
        built,
        digest: intentDigest(intent.intent),
      };
    },
  };
  return world;
}
