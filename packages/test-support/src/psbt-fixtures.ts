/**
 * Shared fixtures for the PSBT tests: real keys (the BIP 32 test-vector
 * seeds as three cosigners), a 2-of-3 regtest wallet, real funding
 * transactions signed by a P2WPKH key, and helpers to edit a PSBT's
 * key-value maps the way an attacker in the middle would.
 */

import {
  type BuiltPsbt,
  bitcoinNetwork,
  buildPsbt,
  deriveAddress,
  descriptorKeyOf,
  type SignerKey,
  scriptToAddress,
  signerKeyFromSeed,
  type WalletDescriptor,
  type WalletUtxo,
  walletFromKeys,
} from '@custos/bitcoin';
import type { Address } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { hex } from '@scure/base';
import { p2wpkh, Transaction } from '@scure/btc-signer';
import { RawPSBTV0 } from '@scure/btc-signer/psbt.js';
import { pubECDSA } from '@scure/btc-signer/utils.js';

/** BIP 32 test vectors 1, 2 and 3: seeds anyone can check. */
export const SEEDS = [
  '000102030405060708090a0b0c0d0e0f',
  'fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542',
  '4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be',
].map((s) => hex.decode(s));

/** BIP 48 multisig P2WSH account path on test networks. */
export const ACCOUNT_PATH = "48'/1'/0'/2'";

export const signers: readonly SignerKey[] = SEEDS.map((seed) => signerKeyFromSeed(seed, ACCOUNT_PATH));

export const wallet: WalletDescriptor = walletFromKeys(
  2,
  signers.map((s) => descriptorKeyOf(s, 'regtest')),
  'regtest',
);

/** Another organization's 2-of-3 wallet: same kind, other keys. */
export const otherSigners: readonly SignerKey[] = [1, 2, 3].map((i) =>
  signerKeyFromSeed(sha256(new TextEncoder().encode(`another custody org, cosigner ${i}`)), ACCOUNT_PATH),
);
export const otherWallet: WalletDescriptor = walletFromKeys(
  2,
  otherSigners.map((s) => descriptorKeyOf(s, 'regtest')),
  'regtest',
);

const REGTEST = bitcoinNetwork('regtest').address;
const funderKey = sha256(new TextEncoder().encode('custos test funder'));
const funder = p2wpkh(pubECDSA(funderKey), REGTEST);

/** A regtest P2WPKH address that is nobody's in these tests but the payee's. */
export const DESTINATION = p2wpkh(pubECDSA(sha256(new TextEncoder().encode('payee'))), REGTEST).address;
export const ATTACKER = p2wpkh(pubECDSA(sha256(new TextEncoder().encode('attacker'))), REGTEST).address;

/**
 * A customer's own regtest P2WPKH address, in no address book: the program
 * is the first 20 bytes of sha256(`seed`), so nobody holds its key. Tests
 * of the exchange's desk pay these (destination 'any').
 */
export function customerAddress(seed: string): Address {
  const program = sha256(new TextEncoder().encode(seed)).slice(0, 20);
  return scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest') as Address;
}

/**
 * A signed segwit transaction paying each wallet address its value: the
 * previous transaction a UTXO's amount is proven by.
 */
export function fundingTx(
  pays: readonly { w: WalletDescriptor; branch: 0 | 1; index: number; value: bigint }[],
  nonce = 0,
): { raw: Uint8Array; txid: string } {
  const tx = new Transaction();
  const total = pays.reduce((s, p) => s + p.value, 0n) + 10_000n;
  tx.addInput({
    txid: sha256(new TextEncoder().encode(`coinbase ${nonce}`)),
    index: 0,
    witnessUtxo: { script: funder.script, amount: total },
  });
  for (const p of pays)
    tx.addOutput({ script: deriveAddress(p.w, p.branch, p.index).script, amount: p.value });
  tx.sign(funderKey);
  tx.finalize();
  return { raw: tx.extract(), txid: tx.id };
}

export function utxosOf(
  pays: readonly { w?: WalletDescriptor; branch: 0 | 1; index: number; value: bigint }[],
  nonce = 0,
): WalletUtxo[] {
  const full = pays.map((p) => ({ w: p.w ?? wallet, branch: p.branch, index: p.index, value: p.value }));
  const f = fundingTx(full, nonce);
  return full.map((p, vout) => ({
    txid: f.txid,
    vout,
    value: p.value,
    branch: p.branch,
    index: p.index,
    prevTx: f.raw,
  }));
}

/** Three UTXOs of the wallet, in two funding transactions. */
export const UTXOS: readonly WalletUtxo[] = [
  ...utxosOf([
    { branch: 0, index: 0, value: 50_000n },
    { branch: 0, index: 1, value: 120_000n },
  ]),
  ...utxosOf([{ branch: 1, index: 4, value: 80_000n }], 1),
];

export const INTENT = { chain: 'bitcoin:regtest', to: DESTINATION, amount: '100000' } as const;
export const CAPS = { maxFee: 10_000n, maxFeeRate: 50n } as const;

export function built(overrides: Partial<Parameters<typeof buildPsbt>[0]> = {}): BuiltPsbt {
  const r = buildPsbt({
    wallet,
    utxos: UTXOS,
    to: DESTINATION,
    amount: 100_000n,
    feeRate: 5n,
    changeIndex: 7,
    ...overrides,
  });
  if (!r.ok) throw new Error(`fixture PSBT not built: ${r.code} ${r.message}`);
  return r.value;
}

/** Mutable view of a PSBT's maps, as scure's raw BIP 174 coder reads them. */
export type EditablePsbt = {
  global: Record<string, unknown> & {
    unsignedTx: { version: number; lockTime: number; inputs: EditableTxIn[]; outputs: EditableTxOut[] };
  };
  inputs: Record<string, unknown>[];
  outputs: Record<string, unknown>[];
};
export type EditableTxIn = { txid: Uint8Array; index: number; finalScriptSig: Uint8Array; sequence: number };
export type EditableTxOut = { amount: bigint; script: Uint8Array };

/** Decodes, lets `edit` change any key-value record, and re-encodes: a man-in-the-middle edit. */
export function editPsbt(psbt: Uint8Array, edit: (p: EditablePsbt) => void): Uint8Array {
  const p = RawPSBTV0.decode(psbt) as unknown as EditablePsbt;
  edit(p);
  return RawPSBTV0.encode(p as unknown as Parameters<typeof RawPSBTV0.encode>[0]);
}

export { funder, funderKey, REGTEST };
