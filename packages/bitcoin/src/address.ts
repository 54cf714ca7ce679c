/**
 * Why an address a person typed cannot be paid on a network, in words: a
 * typo (bad checksum), an address of another network (a mainnet address for a
 * regtest wallet), or something that is no Bitcoin address at all. And the
 * canonical form of one that can: bech32 is case-insensitive (BIP 173), so
 * `BCRT1Q...` (as QR codes carry it) is accepted and written in lower case,
 * the one form that is signed and compared.
 *
 * The network always comes from the wallet's chain id (`bitcoin:regtest`),
 * never from the address: testnet and signet share `tb` and every test
 * network shares the base58 version bytes (network.ts).
 */
import { type Result, refuse } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { bech32, bech32m, createBase58check } from '@scure/base';
import { addressToScript, type BitcoinNetworkName, bitcoinNetwork } from './network.js';

const base58check = createBase58check(sha256);

/** bech32 prefixes and base58 version bytes of each family of networks, to name the one an address is for. */
const HRP_NETWORK: ReadonlyMap<string, string> = new Map([
  ['bc', 'mainnet'],
  ['tb', 'testnet or signet'],
  ['bcrt', 'regtest'],
]);
const BASE58_NETWORK: ReadonlyMap<number, string> = new Map([
  [0x00, 'mainnet'],
  [0x05, 'mainnet'],
  [0x6f, 'testnet, signet or regtest'],
  [0xc4, 'testnet, signet or regtest'],
]);
const BECH32_CHARS = /^[qpzry9x8gf2tvdw0s3jn54khce6mua7l]+$/;
const BASE58_CHARS = /^[1-9A-HJ-NP-Za-km-z]+$/;

/**
 * The canonical form of `text` as a payable address of `network`, or a
 * refusal (INVALID_VALUE, WRONG_CHAIN for another network's address) whose
 * message says what is wrong with it.
 */
export function checkAddress(text: string, network: BitcoinNetworkName): Result<string> {
  const input = text.trim();
  const own = bitcoinNetwork(network);
  if (input === '') return refuse('INVALID_VALUE', 'the address is empty');
  const sep = input.lastIndexOf('1');
  const hrp = sep > 0 ? input.slice(0, sep).toLowerCase() : '';
  if (HRP_NETWORK.has(hrp)) {
    if (input !== input.toLowerCase() && input !== input.toUpperCase()) {
      return refuse(
        'INVALID_VALUE',
        `${input} mixes upper and lower case, which a bech32 address never does`,
      );
    }
    const lower = input.toLowerCase();
    if (!BECH32_CHARS.test(lower.slice(sep + 1))) {
      return refuse(
        'INVALID_VALUE',
        `${input} has characters a bech32 address never has (only q-z, 0-9 without 1, b, i, o)`,
      );
    }
    if (!validBech32(lower)) {
      return refuse(
        'INVALID_VALUE',
        `${input} has a bad checksum: a character is wrong or missing (a typo?)`,
      );
    }
    if (hrp !== own.address.bech32) {
      return refuse(
        'WRONG_CHAIN',
        `${input} is a ${HRP_NETWORK.get(hrp)} address, and the wallet is on ${own.chain}`,
      );
    }
    if (addressToScript(lower, network) === undefined) {
      return refuse('INVALID_VALUE', `${input} is not a standard address (P2WPKH, P2WSH or P2TR) to pay`);
    }
    return { ok: true, value: lower };
  }
  if (BASE58_CHARS.test(input) && input.length >= 26 && input.length <= 35) {
    let bytes: Uint8Array;
    try {
      bytes = base58check.decode(input);
    } catch {
      return refuse(
        'INVALID_VALUE',
        `${input} has a bad checksum: a character is wrong or missing (a typo?)`,
      );
    }
    const family = bytes.length === 21 ? BASE58_NETWORK.get(bytes[0]!) : undefined;
    if (family === undefined)
      return refuse('INVALID_VALUE', `${input} is not a Bitcoin address of a known form`);
    if (addressToScript(input, network) === undefined) {
      return refuse('WRONG_CHAIN', `${input} is a ${family} address, and the wallet is on ${own.chain}`);
    }
    return { ok: true, value: input };
  }
  return refuse(
    'INVALID_VALUE',
    `${input} is not a Bitcoin address of a known form (on ${own.chain}: ${own.address.bech32}1... bech32, or base58)`,
  );
}

function validBech32(lower: string): boolean {
  for (const codec of [bech32, bech32m]) {
    try {
      codec.decode(lower as `${string}1${string}`, 120);
      return true;
    } catch {
      // Not this encoding: try the other.
    }
  }
  return false;
}
