/**
 * Signing, combining and finalizing (BIP 174 Signer, Combiner, Input
 * Finalizer and Transaction Extractor roles).
 *
 * signPsbt is the only code in Custos that touches a private key. It signs
 * only what analyzePsbt has proven to be this wallet's spend, only inputs
 * whose derivations name this key, with the child key it derives itself from
 * the derivation path and checks against the public key the descriptor
 * gives, and only SIGHASH_ALL. It does not know the intent: the signer
 * daemon must call verifyPsbt first, with the intent it verified, and sign
 * the very same bytes.
 *
 * finalizePsbt checks every partial signature (ECDSA over the BIP 143
 * digest, low-S, SIGHASH_ALL) before it assembles witnesses, so a bad
 * signature is named here instead of being rejected by the network later.
 */
import { accept, CustosError, type Result, refuse, sha256 } from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import { PSBTCombine, Transaction } from '@scure/btc-signer';
import { analyzePsbt, type PsbtAnalysis, SIGHASH_ALL } from './analyze.js';
import {
  type DescriptorKey,
  formatPath,
  parsePath,
  type WalletDescriptor,
  walletKeyOrigins,
} from './descriptor.js';
import { type BitcoinNetworkName, bitcoinNetwork, equalBytes } from './network.js';
import { encodeKnownPsbt, type PsbtInputMap, parsePsbt, type UnsignedTx } from './psbt.js';

export interface SignerKey {
  /** Master key fingerprint, 8 lower-case hex digits. */
  readonly fingerprint: string;
  /** Path of the account key from the master key, canonical (`48h/1h/0h/2h`). */
  readonly path: string;
  /** The account-level private extended key at `path`. */
  readonly account: HDKey;
}

const STRICT = { unknown: 'strict', proprietary: 'strict' } as const;

/** The account key at `path` (e.g. `48h/1h/0h/2h`, any hardened marker) of a BIP 32 seed. */
export function signerKeyFromSeed(seed: Uint8Array, path: string): SignerKey {
  if (!(seed instanceof Uint8Array) || seed.length < 16 || seed.length > 64) {
    throw new CustosError('INVALID_VALUE', 'a BIP 32 seed is 16 to 64 bytes');
  }
  const steps = parsePath(path);
  if (steps === undefined) throw new CustosError('INVALID_VALUE', `malformed derivation path ${path}`);
  const master = HDKey.fromMasterSeed(seed);
  let account = master;
  for (const step of steps) account = account.deriveChild(step);
  return Object.freeze({
    fingerprint: master.fingerprint.toString(16).padStart(8, '0'),
    path: formatPath(steps),
    account,
  });
}

/** The descriptor key (origin and xpub/tpub) a signer contributes to a wallet, for `custos init`. */
export function descriptorKeyOf(key: SignerKey, network: BitcoinNetworkName): DescriptorKey {
  const a = key.account;
  const pub = new HDKey({
    versions: bitcoinNetwork(network).bip32,
    depth: a.depth,
    index: a.index,
    parentFingerprint: a.parentFingerprint,
    chainCode: a.chainCode!,
    publicKey: a.publicKey!,
  });
  return Object.freeze({ fingerprint: key.fingerprint, path: key.path, xpub: pub.publicExtendedKey });
}

/**
 * The account key as a BIP 32 extended private key (`xprv`, `tprv` off
 * mainnet) with its origin: what `custos signer export-key` writes for a
 * recovery ceremony without Custos (issue 12), in the form a descriptor
 * wallet imports (`[fingerprint/path]xprv.../0/*`).
 */
export function exportAccountKey(
  key: SignerKey,
  network: BitcoinNetworkName,
): { readonly fingerprint: string; readonly path: string; readonly xprv: string } {
  const a = key.account;
  if (a.privateKey === null || a.privateKey === undefined) {
    throw new CustosError('INVALID_VALUE', 'this key holds no private key to export');
  }
  const priv = new HDKey({
    versions: bitcoinNetwork(network).bip32,
    depth: a.depth,
    index: a.index,
    parentFingerprint: a.parentFingerprint,
    chainCode: a.chainCode!,
    privateKey: a.privateKey,
  });
  return Object.freeze({ fingerprint: key.fingerprint, path: key.path, xprv: priv.privateExtendedKey });
}

/**
 * Signs every input whose derivations name this key, SIGHASH_ALL only.
 * Refuses when the key is not one of the wallet's (NOT_AUTHORIZED), when the
 * PSBT is not a provable spend of this wallet (analyzePsbt's codes), and when
 * no input is this key's to sign.
 */
export function signPsbt(
  psbt: Uint8Array,
  key: SignerKey,
  wallet: WalletDescriptor,
): Result<{ psbt: Uint8Array; signed: number }> {
  if (key.account.privateKey === null) {
    throw new CustosError('INVALID_VALUE', 'signer key holds no private key');
  }
  const path = parsePath(key.path);
  const fingerprint = Number.parseInt(key.fingerprint, 16);
  const slot = walletKeyOrigins(wallet).findIndex(
    (o) =>
      o.fingerprint === fingerprint &&
      path !== undefined &&
      o.path.length === path.length &&
      o.path.every((s, k) => s === path[k]) &&
      equalBytes(o.publicKey, key.account.publicKey!) &&
      equalBytes(o.chainCode, key.account.chainCode!),
  );
  if (slot < 0) return refuse('NOT_AUTHORIZED', 'this signer key is not one of the wallet keys');

  // A PSBT just verified (verifyPsbt) is answered from analyzePsbt's cache: no second decode.
  const analyzed = analyzePsbt(psbt, wallet);
  if (!analyzed.ok) return analyzed;
  return signAnalysis(analyzed.value, key, slot);
}

/**
 * Signs every input of a proven analysis with the key at `slot` of the
 * wallet: BIP 143 digests computed once each (the shared hashes once per
 * transaction), the child key derived here and checked against the
 * descriptor's, ECDSA with RFC 6979 nonces and low S (the bytes
 * @scure/btc-signer's signIdx makes, sign-finalize.test.ts), and the PSBT
 * written back from the analysis's maps with each signature added, without
 * decoding anything again.
 */
function signAnalysis(
  a: PsbtAnalysis,
  key: SignerKey,
  slot: number,
): Result<{ psbt: Uint8Array; signed: number }> {
  const halves = witnessV0Preimages(a);
  const inputs: PsbtInputMap[] = [];
  let signed = 0;
  for (const [i, input] of a.inputs.entries()) {
    const expected = input.derived.derivations[slot]!;
    const der = signInput(branchKey(key.account, input.branch), input.index, expected.pubkey, halves[i]!);
    const sig = new Uint8Array(der.length + 1);
    sig.set(der);
    sig[der.length] = SIGHASH_ALL;
    const map = a.raw.inputs[i]!;
    const others = (map.partialSig ?? []).filter(([pub]) => !equalBytes(pub, expected.pubkey));
    inputs.push({ ...map, partialSig: [...others, [expected.pubkey, sig]] });
    signed++;
  }
  if (signed === 0) return refuse('FOREIGN_INPUT', 'no input of this PSBT is this key’s to sign');
  return accept({ psbt: encodeKnownPsbt({ ...a.raw, inputs }), signed });
}

type NodeCrypto = typeof import('node:crypto');
/**
 * OpenSSL's secp256k1 through node:crypto signs about three times faster than
 * noble on the same core; looked up without a static import so that a build
 * without it (or a browser) signs with noble.
 */
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;

/** Which implementation signs inputs here: 'openssl' when node:crypto has secp256k1, else 'noble'. */
export const ECDSA_BACKEND: 'openssl' | 'noble' = (() => {
  try {
    return nodeCrypto?.getCurves().includes('secp256k1') === true ? 'openssl' : 'noble';
  } catch {
    return 'noble';
  }
})();

const CURVE_N = secp256k1.Point.Fn.ORDER;
/** An ECPrivateKey (RFC 5915) on secp256k1 around a 32-byte secret, without the public key. */
const SEC1_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x01, 0x04, 0x20]);
const SEC1_SUFFIX = Uint8Array.from([0xa0, 0x07, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]);

function bigOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex') || '0'}`);
}

function bytes32(n: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));
}

/**
 * The DER ECDSA signature (low S, BIP 62/146) of the BIP 143 digest whose
 * preimage hashes to `half` (the digest is sha256 of it), by the child key at
 * `index` (unhardened) of `branch`, after checking that the child's public
 * key is `expected`, the key the descriptor gives for that input. Throws
 * INTERNAL when it is not (a bug, never bad input). With OpenSSL: the BIP 32
 * child private key computed here (HMAC-SHA512 of the branch's public key and
 * index, added to the branch's private key mod n), its public key computed
 * by OpenSSL and compared, then an OpenSSL signature made low S. With noble:
 * scure's HDKey derivation and noble's RFC 6979 signature.
 */
export function signInput(branch: HDKey, index: number, expected: Uint8Array, half: Uint8Array): Uint8Array {
  if (branch.privateKey === null || branch.publicKey === null || branch.chainCode === null) {
    throw new CustosError('INTERNAL', 'signer key holds no private key');
  }
  if (ECDSA_BACKEND === 'openssl' && nodeCrypto !== undefined) {
    const data = new Uint8Array(37);
    data.set(branch.publicKey);
    new DataView(data.buffer).setUint32(33, index, false);
    const il = nodeCrypto.createHmac('sha512', branch.chainCode).update(data).digest().subarray(0, 32);
    const tweak = bigOf(il);
    const k = (tweak + bigOf(branch.privateKey)) % CURVE_N;
    if (tweak >= CURVE_N || k === 0n)
      throw new CustosError('INTERNAL', `child key ${index} is invalid (BIP 32)`);
    const priv = bytes32(k);
    // OpenSSL computes the public key as it imports the private key (SEC 1, RFC 5915): compared
    // with the descriptor's key before anything is signed with it.
    const der = Buffer.concat([SEC1_PREFIX, priv, SEC1_SUFFIX]);
    const keyObject = nodeCrypto.createPrivateKey({ key: der, format: 'der', type: 'sec1' });
    der.fill(0);
    const jwk = keyObject.export({ format: 'jwk' }) as { x?: string; y?: string };
    const x = Buffer.from(jwk.x ?? '', 'base64url');
    const y = Buffer.from(jwk.y ?? '', 'base64url');
    const compressed = new Uint8Array(33);
    compressed[0] = y.length === 32 && (y[31]! & 1) === 1 ? 0x03 : 0x02;
    if (x.length === 32) compressed.set(x, 1);
    if (x.length !== 32 || y.length !== 32 || !equalBytes(compressed, expected)) {
      priv.fill(0);
      throw new CustosError('INTERNAL', 'derived signing key does not match the descriptor');
    }
    priv.fill(0);
    // OpenSSL hashes what it signs: ECDSA-with-SHA256 over sha256(preimage) signs sha256d(preimage).
    const sig = secp256k1.Signature.fromBytes(nodeCrypto.sign('sha256', half, keyObject), 'der');
    return (sig.hasHighS() ? new secp256k1.Signature(sig.r, CURVE_N - sig.s) : sig).toBytes('der');
  }
  const child = branch.deriveChild(index);
  try {
    if (child.privateKey === null || !equalBytes(child.publicKey!, expected)) {
      throw new CustosError('INTERNAL', 'derived signing key does not match the descriptor');
    }
    return secp256k1.Signature.fromBytes(
      secp256k1.sign(sha256(half), child.privateKey, { prehash: false }),
    ).toBytes('der');
  } finally {
    child.wipePrivateData();
  }
}

const SPKI_SECP256K1_PREFIX = Uint8Array.from(
  Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'),
);
const verifyKeys = new Map<string, ReturnType<NodeCrypto['createPublicKey']> | null>();
const VERIFY_KEYS_MAX = 10_000;

/**
 * Whether `der` (without its sighash byte) is a valid ECDSA signature by the
 * compressed public key `pubkey` of the BIP 143 digest sha256(`half`): strict
 * DER (what noble reads and writes back identically), low S (BIP 62/146),
 * then the curve check. The same answer as noble's
 * `secp256k1.verify(der, sha256(half), pubkey, {prehash: false, format: 'der', lowS: true})`
 * (tested against it, sign-finalize.test.ts); with OpenSSL about four times
 * faster, the key imported once per process (an invalid point fails its import).
 */
export function verifyInputSignature(half: Uint8Array, pubkey: Uint8Array, der: Uint8Array): boolean {
  let sig: InstanceType<typeof secp256k1.Signature>;
  try {
    sig = secp256k1.Signature.fromBytes(der, 'der');
  } catch {
    return false;
  }
  if (sig.hasHighS() || !equalBytes(sig.toBytes('der'), der)) return false;
  if (ECDSA_BACKEND === 'openssl' && nodeCrypto !== undefined && pubkey.length === 33) {
    const hexKey = Buffer.from(pubkey).toString('hex');
    let key = verifyKeys.get(hexKey);
    if (key === undefined) {
      try {
        key = nodeCrypto.createPublicKey({
          key: Buffer.concat([SPKI_SECP256K1_PREFIX, pubkey]),
          format: 'der',
          type: 'spki',
        });
      } catch {
        key = null;
      }
      if (verifyKeys.size >= VERIFY_KEYS_MAX) verifyKeys.clear();
      verifyKeys.set(hexKey, key);
    }
    if (key === null) return false;
    // ECDSA-with-SHA256 over sha256(preimage) checks the signature of sha256d(preimage).
    return nodeCrypto.verify('sha256', half, { key, dsaEncoding: 'der' }, der);
  }
  try {
    return secp256k1.verify(der, sha256(half), pubkey, { prehash: false, format: 'der', lowS: true });
  } catch {
    return false;
  }
}

/**
 * The receive (0) and change (1) branch keys of each account key in use,
 * derived once: a child key derivation computes the child's public key (a
 * point multiplication), and every input would otherwise derive its branch
 * again. They hold nothing the account key does not.
 */
const branches = new WeakMap<HDKey, [HDKey, HDKey]>();

function branchKey(account: HDKey, branch: 0 | 1): HDKey {
  let pair = branches.get(account);
  if (pair === undefined) {
    pair = [account.deriveChild(0), account.deriveChild(1)];
    branches.set(account, pair);
  }
  return pair[branch];
}

/**
 * The BIP 143 digest of each input (P2WSH, SIGHASH_ALL) of an analyzed
 * transaction: hashPrevouts, hashSequence and hashOutputs once, then one
 * preimage per input with its witness script and proven amount.
 */
export function witnessV0Digests(a: PsbtAnalysis): Uint8Array[] {
  return witnessV0Preimages(a).map((half) => sha256(half));
}

/** sha256 of each input's BIP 143 preimage: its digest is sha256 of this (sha256d of the preimage). */
function witnessV0Preimages(a: PsbtAnalysis): Uint8Array[] {
  const tx: UnsignedTx = a.raw.global.unsignedTx;
  const prevouts = new Uint8Array(36 * tx.inputs.length);
  const sequences = new Uint8Array(4 * tx.inputs.length);
  const pv = new DataView(prevouts.buffer);
  const sv = new DataView(sequences.buffer);
  for (const [i, txIn] of tx.inputs.entries()) {
    prevouts.set(Uint8Array.from(txIn.txid).reverse(), 36 * i);
    pv.setUint32(36 * i + 32, txIn.index, true);
    sv.setUint32(4 * i, txIn.sequence, true);
  }
  const outs: Uint8Array[] = tx.outputs.map((o) => {
    const b = new Uint8Array(8 + compactLength(o.script.length) + o.script.length);
    new DataView(b.buffer).setBigUint64(0, o.amount, true);
    writeCompact(b, 8, o.script.length);
    b.set(o.script, 8 + compactLength(o.script.length));
    return b;
  });
  const hashPrevouts = sha256d(prevouts);
  const hashSequence = sha256d(sequences);
  const hashOutputs = sha256d(concat(outs));
  return a.inputs.map((input, i) => {
    const script = a.raw.inputs[i]!.witnessScript!;
    const txIn = tx.inputs[i]!;
    const pre = new Uint8Array(
      4 + 32 + 32 + 36 + compactLength(script.length) + script.length + 8 + 4 + 32 + 4 + 4,
    );
    const v = new DataView(pre.buffer);
    let at = 0;
    v.setUint32(at, tx.version, true);
    at += 4;
    pre.set(hashPrevouts, at);
    at += 32;
    pre.set(hashSequence, at);
    at += 32;
    pre.set(prevouts.subarray(36 * i, 36 * i + 36), at);
    at += 36;
    at = writeCompact(pre, at, script.length);
    pre.set(script, at);
    at += script.length;
    v.setBigUint64(at, input.value, true);
    at += 8;
    v.setUint32(at, txIn.sequence, true);
    at += 4;
    pre.set(hashOutputs, at);
    at += 32;
    v.setUint32(at, tx.lockTime, true);
    at += 4;
    v.setUint32(at, SIGHASH_ALL, true);
    return sha256(pre);
  });
}

function sha256d(b: Uint8Array): Uint8Array {
  return sha256(sha256(b));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function compactLength(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : 5;
}

function writeCompact(b: Uint8Array, at: number, n: number): number {
  if (n < 0xfd) {
    b[at] = n;
    return at + 1;
  }
  const v = new DataView(b.buffer, b.byteOffset);
  if (n <= 0xffff) {
    b[at] = 0xfd;
    v.setUint16(at + 1, n, true);
    return at + 3;
  }
  b[at] = 0xfe;
  v.setUint32(at + 1, n, true);
  return at + 5;
}

/** Merges the signatures of PSBTs of one unsigned transaction (BIP 174 Combiner). */
export function combinePsbts(psbts: readonly Uint8Array[]): Result<Uint8Array> {
  if (psbts.length === 0) return refuse('INVALID_VALUE', 'nothing to combine');
  for (const p of psbts) {
    const r = parsePsbt(p);
    if (!r.ok) return r;
  }
  try {
    return accept(PSBTCombine([...psbts], { ...STRICT, PSBTVersion: 0 }));
  } catch (err) {
    return refuse('INVALID_VALUE', `PSBTs cannot be combined: ${messageOf(err)}`);
  }
}

/**
 * Checks every signature, builds each input's witness and extracts the
 * network transaction (BIP 174 Input Finalizer and Transaction Extractor).
 */
export function finalizePsbt(psbt: Uint8Array): Result<{ tx: Uint8Array; txid: string; hex: string }> {
  const parsed = parsePsbt(psbt);
  if (!parsed.ok) return parsed;
  let tx: Transaction;
  try {
    tx = Transaction.fromPSBT(psbt, STRICT);
  } catch (err) {
    return refuse('INVALID_VALUE', `PSBT cannot be finalized: ${messageOf(err)}`);
  }
  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    const prevOut = input.witnessUtxo ?? input.nonWitnessUtxo?.outputs[input.index ?? -1];
    if (prevOut === undefined || input.witnessScript === undefined) {
      return refuse('UNSUPPORTED_TRANSACTION', `input ${i} is not a P2WSH input with its previous output`);
    }
    for (const [pubkey, sig] of input.partialSig ?? []) {
      if (sig[sig.length - 1] !== SIGHASH_ALL) {
        return refuse('SIGHASH_NOT_ALL', `input ${i} holds a signature that is not SIGHASH_ALL`);
      }
      let valid = false;
      try {
        const digest = tx.preimageWitnessV0(i, input.witnessScript, SIGHASH_ALL, prevOut.amount);
        valid = secp256k1.verify(sig.subarray(0, -1), digest, pubkey, {
          prehash: false,
          format: 'der',
          lowS: true,
        });
      } catch {
        valid = false;
      }
      if (!valid) return refuse('BAD_SIGNATURE', `input ${i} holds an invalid signature`);
    }
  }
  try {
    tx.finalize();
    const raw = tx.extract();
    return accept({ tx: raw, txid: tx.id, hex: tx.hex });
  } catch (err) {
    return refuse('INVALID_VALUE', `PSBT cannot be finalized: ${messageOf(err)}`);
  }
}

function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
