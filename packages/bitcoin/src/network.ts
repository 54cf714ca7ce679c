/**
 * Bitcoin networks as Custos names them, and the address rules that depend
 * on them.
 *
 * An intent names its chain as `bitcoin:<network>` (docs/architecture.md, Objects). Each
 * network fixes three things a signer must never mix up: the bech32 prefix
 * and base58 version bytes of addresses (BIP 173, BIP 350), and the BIP 32
 * version bytes of extended keys (xpub for mainnet, tpub for every test
 * network, as Bitcoin Core prints them). Regtest uses the `bcrt` prefix like
 * Bitcoin Core; testnet and signet share `tb` and tpub, so the chain id, not
 * the address, is what tells them apart (THREATS 16).
 *
 * Destinations are limited to the five standard output types (P2PKH, P2SH,
 * P2WPKH, P2WSH, P2TR). Future witness versions are refused: their spending
 * rules are not defined yet, so coins sent there could not be spent; P2A is an
 * anyone-can-spend anchor and never a payee.
 */
import { CustosError } from '@custos/core';
import type { Versions } from '@scure/bip32';
import { Address, type NETWORK, OutScript } from '@scure/btc-signer';

export const BITCOIN_NETWORKS = ['mainnet', 'testnet', 'signet', 'regtest'] as const;
export type BitcoinNetworkName = (typeof BITCOIN_NETWORKS)[number];

/** Address parameters in the shape @scure/btc-signer takes. */
export type AddressParams = typeof NETWORK;

export interface BitcoinNetwork {
  readonly name: BitcoinNetworkName;
  /** The chain id an intent carries, e.g. `bitcoin:regtest`. */
  readonly chain: string;
  readonly address: AddressParams;
  /** BIP 32 serialization versions: xpub/xprv on mainnet, tpub/tprv elsewhere. */
  readonly bip32: Versions;
}

const MAIN_BIP32: Versions = Object.freeze({ public: 0x0488b21e, private: 0x0488ade4 });
const TEST_BIP32: Versions = Object.freeze({ public: 0x043587cf, private: 0x04358394 });

const testAddress = (bech32: string): AddressParams =>
  Object.freeze({ bech32, pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef });

export const NETWORKS: Readonly<Record<BitcoinNetworkName, BitcoinNetwork>> = Object.freeze({
  mainnet: Object.freeze({
    name: 'mainnet',
    chain: 'bitcoin:mainnet',
    address: Object.freeze({ bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, wif: 0x80 }),
    bip32: MAIN_BIP32,
  }),
  testnet: Object.freeze({
    name: 'testnet',
    chain: 'bitcoin:testnet',
    address: testAddress('tb'),
    bip32: TEST_BIP32,
  }),
  signet: Object.freeze({
    name: 'signet',
    chain: 'bitcoin:signet',
    address: testAddress('tb'),
    bip32: TEST_BIP32,
  }),
  regtest: Object.freeze({
    name: 'regtest',
    chain: 'bitcoin:regtest',
    address: testAddress('bcrt'),
    bip32: TEST_BIP32,
  }),
});

export function isBitcoinNetworkName(value: unknown): value is BitcoinNetworkName {
  return typeof value === 'string' && (BITCOIN_NETWORKS as readonly string[]).includes(value);
}

/** The network for a known name; a caller's mistake otherwise. */
export function bitcoinNetwork(name: BitcoinNetworkName): BitcoinNetwork {
  if (!isBitcoinNetworkName(name)) {
    throw new CustosError('INVALID_VALUE', `unknown Bitcoin network ${String(name)}`);
  }
  return NETWORKS[name];
}

/** `bitcoin:regtest` → `regtest`; undefined for any other chain id. */
export function networkOfChain(chain: string): BitcoinNetworkName | undefined {
  const m = /^bitcoin:([a-z]+)$/.exec(chain);
  const name = m?.[1];
  return isBitcoinNetworkName(name) ? name : undefined;
}

export function chainOfNetwork(name: BitcoinNetworkName): string {
  return bitcoinNetwork(name).chain;
}

const PAYABLE_TYPES: ReadonlySet<string> = new Set(['pkh', 'sh', 'wpkh', 'wsh', 'tr']);

/**
 * The output script an address pays, or undefined when the address is not a
 * standard payable address of this network. Never throws on bad input.
 */
export function addressToScript(address: string, network: BitcoinNetworkName): Uint8Array | undefined {
  try {
    const decoded = Address(bitcoinNetwork(network).address).decode(address);
    if (!PAYABLE_TYPES.has(decoded.type)) return undefined;
    return OutScript.encode(decoded);
  } catch {
    return undefined;
  }
}

/**
 * The address of a standard output script on this network, or undefined for a
 * script that has no address (OP_RETURN, bare multisig, future witness versions).
 */
export function scriptToAddress(script: Uint8Array, network: BitcoinNetworkName): string | undefined {
  try {
    const decoded = OutScript.decode(script);
    if (!PAYABLE_TYPES.has(decoded.type)) return undefined;
    const address = Address(bitcoinNetwork(network).address).encode(decoded);
    // Script.decode normalizes pushes; only a script that re-encodes to the same bytes has this address.
    const again = addressToScript(address, network);
    return again !== undefined && equalBytes(again, script) ? address : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bitcoin Core's dust threshold at its default dust relay fee (3 sat/vB): the
 * cost of an output plus the input that would spend it (GetDustThreshold in
 * policy.cpp). 546 for P2PKH, 540 for P2SH, 294 for P2WPKH, 330 for P2WSH and P2TR.
 */
export function dustThreshold(script: Uint8Array): bigint {
  const outputSize = 8 + compactSizeLength(script.length) + script.length;
  const isWitnessProgram =
    script.length >= 4 &&
    script.length <= 42 &&
    (script[0] === 0x00 || (script[0]! >= 0x51 && script[0]! <= 0x60)) &&
    script[1] === script.length - 2;
  const spendSize = isWitnessProgram ? 32 + 4 + 1 + Math.floor(107 / 4) + 4 : 32 + 4 + 1 + 107 + 4;
  return BigInt((outputSize + spendSize) * 3);
}

export function compactSizeLength(n: number): number {
  if (n < 0xfd) return 1;
  if (n <= 0xffff) return 3;
  if (n <= 0xffffffff) return 5;
  return 9;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
