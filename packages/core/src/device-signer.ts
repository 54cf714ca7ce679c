/**
 * The key interface of a member device, for keys the process does not hold
 * in its own memory.
 *
 * A service requester (issue 13: an exchange backend that asks for its
 * customers' payouts) is a member like any other, whose device key lives on
 * a server: in a sealed key file today (the CLI's `custos-device-key` file,
 * scrypt and XChaCha20-Poly1305, sealed.ts), in a hardware security module
 * (PKCS#11 v3.0: a `CKK_EC_EDWARDS` key, mechanism `CKM_EDDSA`) or a cloud
 * KMS with Ed25519 keys tomorrow. Everything Custos asks of such a key is
 * one operation: an Ed25519 signature (RFC 8032, pure Ed25519, no prehash)
 * over the bytes it is given, which are either the 32 raw bytes of an object
 * digest (intents, approvals, governance entries) or an RFC 9421 signature
 * base (every HTTP request). So the interface is that one asynchronous
 * function, and nothing here needs the secret.
 *
 * Why each signature is verified against the device's public key before it
 * is used ({@link signWithDevice}): an HSM slot or a KMS key id that points
 * at another key would otherwise surface as BAD_SIGNATURE or
 * INTENT_SIGNATURE_INVALID at the coordinator, far from the mistake. The
 * check costs one verification, a few tens of microseconds.
 *
 * What the key can do if stolen is what its member may do: a service
 * requester holds the `requester` role only, and a policy lets it pay alone
 * only under an automated rule that every signer bounds by its own limits
 * (objects.ts, automationProblem).
 */
import { fromHex, toHex } from './bytes.js';
import { CustosError } from './errors.js';
import { ed25519PublicKey, signBytes, verifyEd25519 } from './keys.js';
import {
  type Approval,
  approvalDigest,
  type DeviceSignature,
  type Intent,
  intentDigest,
  type SignedApproval,
  type SignedIntent,
} from './objects.js';
import type { Digest, Hex } from './types.js';

/**
 * A member device's Ed25519 key, wherever it lives.
 *
 * @example
 * // A PKCS#11 or KMS adapter: only `sign` talks to the key store.
 * const signer: DeviceSigner = {
 *   member: 'exchange-backend',
 *   device: 'backend-hsm-1',
 *   publicKey: '3b6a27bc...', // as governance registered it
 *   sign: async (message) => hsm.sign({ mechanism: 'CKM_EDDSA', key: handle }, message),
 * };
 */
export interface DeviceSigner {
  /** The member id, as in governance. */
  readonly member: string;
  /** The device id under that member, as in governance. */
  readonly device: string;
  /** The device's Ed25519 public key (32 bytes, hex), as governance registered it. */
  readonly publicKey: Hex;
  /** The 64-byte Ed25519 signature (RFC 8032, pure) of `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** The RFC 9421 `keyid` the coordinator expects for this device: `member:<member>/<device>`. */
export function deviceKeyId(signer: Pick<DeviceSigner, 'member' | 'device'>): string {
  return `member:${signer.member}/${signer.device}`;
}

/**
 * A {@link DeviceSigner} over a secret key held in this process (a key file
 * opened with its password, a test). The key is copied, so the caller may
 * wipe its own copy.
 */
export function memoryDeviceSigner(d: {
  readonly member: string;
  readonly device: string;
  readonly secretKey: Uint8Array;
}): DeviceSigner {
  const secretKey = Uint8Array.from(d.secretKey);
  return {
    member: d.member,
    device: d.device,
    publicKey: ed25519PublicKey(secretKey),
    sign: async (message) => fromHex(signBytes(secretKey, message)),
  };
}

/**
 * Signs `message` with the device and checks the answer against its public
 * key: a signature that is not 64 bytes, or does not verify (the HSM slot or
 * KMS key is another key), throws BAD_SIGNATURE and nothing is sent.
 */
export async function signWithDevice(signer: DeviceSigner, message: Uint8Array): Promise<Hex> {
  const sig = await signer.sign(message);
  if (!(sig instanceof Uint8Array) || sig.length !== 64) {
    throw new CustosError(
      'BAD_SIGNATURE',
      `device ${deviceKeyId(signer)} did not return a 64-byte Ed25519 signature`,
    );
  }
  const hex = toHex(sig) as Hex;
  if (!verifyEd25519(signer.publicKey, message, hex)) {
    throw new CustosError(
      'BAD_SIGNATURE',
      `the signature of device ${deviceKeyId(signer)} does not verify under its public key: is the key store holding another key?`,
    );
  }
  return hex;
}

/** The device's signature on the 32 raw bytes of `digest` (what signDigest makes with a key in memory). */
export async function signDigestWithDevice(signer: DeviceSigner, digest: Digest): Promise<DeviceSignature> {
  return { kind: 'ed25519', sig: await signWithDevice(signer, fromHex(digest)) };
}

/**
 * Signs an intent as its requester's device. An intent naming another
 * requester or device is a caller's mistake (NOT_AUTHORIZED): the
 * coordinator and every signer would refuse it anyway.
 */
export async function signIntentWithDevice(signer: DeviceSigner, intent: Intent): Promise<SignedIntent> {
  if (intent.requester !== signer.member || intent.device !== signer.device) {
    throw new CustosError(
      'NOT_AUTHORIZED',
      `the intent names ${intent.requester}/${intent.device}, this device is ${signer.member}/${signer.device}`,
    );
  }
  return { intent, signature: await signDigestWithDevice(signer, intentDigest(intent)) };
}

/** Signs an approval as its approver's device (NOT_AUTHORIZED for another approver or device). */
export async function signApprovalWithDevice(
  signer: DeviceSigner,
  approval: Approval,
): Promise<SignedApproval> {
  if (approval.approver !== signer.member || approval.device !== signer.device) {
    throw new CustosError(
      'NOT_AUTHORIZED',
      `the approval names ${approval.approver}/${approval.device}, this device is ${signer.member}/${signer.device}`,
    );
  }
  return { approval, signature: await signDigestWithDevice(signer, approvalDigest(approval)) };
}
