/**
 * DeviceSigner (issue 13): a device key the process does not hold, behind
 * one asynchronous `sign`. What it signs is byte for byte what a key in
 * memory signs (Ed25519 is deterministic, RFC 8032), so the coordinator and
 * every signer verify it unchanged; an answer from another key is caught
 * before it is used.
 */
import { describe, expect, it } from 'vitest';
import { fromHex, utf8 } from '../src/bytes.js';
import {
  deviceKeyId,
  memoryDeviceSigner,
  signApprovalWithDevice,
  signDigestWithDevice,
  signIntentWithDevice,
  signWithDevice,
} from '../src/device-signer.js';
import {
  parseSignatureHeaders,
  signRequest,
  signRequestWith,
  verifyRequestSignature,
} from '../src/http-signature.js';
import { generateEd25519, signDigest, verifyDeviceSignature } from '../src/keys.js';
import { approvalDigest, intentDigest } from '../src/objects.js';
import { approve, makeIntent, person } from './support/policy-fixture.js';

const key = generateEd25519();
const signer = memoryDeviceSigner({ member: 'backend', device: 'backend-1', secretKey: key.secretKey });
const backend = { id: 'backend', devices: [{ id: 'backend-1', keys: key }] };

describe('DeviceSigner', () => {
  it('names its HTTP key id and public key as governance does', () => {
    expect(deviceKeyId(signer)).toBe('member:backend/backend-1');
    expect(signer.publicKey).toBe(key.publicKey);
  });

  it('signs an intent exactly as the key in memory does, and the policy engine verifies it', async () => {
    const intent = makeIntent(backend);
    const signed = await signIntentWithDevice(signer, intent);
    expect(signed.signature).toEqual(signDigest(key.secretKey, intentDigest(intent)));
    const device = { id: 'backend-1', kind: 'ed25519' as const, publicKey: key.publicKey };
    expect(verifyDeviceSignature(device, intentDigest(intent), signed.signature).ok).toBe(true);
  });

  it('signs approvals and digests for its own member and device only (NOT_AUTHORIZED otherwise)', async () => {
    const alice = person('alice');
    const theirs = approve(alice, intentDigest(makeIntent(backend))).approval;
    await expect(signApprovalWithDevice(signer, theirs)).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
    const mine = { ...theirs, approver: 'backend', device: 'backend-1' };
    const signed = await signApprovalWithDevice(signer, mine);
    expect(signed.signature).toEqual(signDigest(key.secretKey, approvalDigest(mine)));
    await expect(signIntentWithDevice(signer, makeIntent(alice))).rejects.toMatchObject({
      code: 'NOT_AUTHORIZED',
    });
    const digest = intentDigest(makeIntent(backend));
    expect(await signDigestWithDevice(signer, digest)).toEqual(signDigest(key.secretKey, digest));
  });

  it('signs HTTP requests (RFC 9421) to the same headers as signRequest, which the coordinator verifies', async () => {
    const req = { method: 'POST', path: '/v1/intents', query: '?', body: utf8('{"a":1}') };
    const params = {
      keyId: deviceKeyId(signer),
      created: 1_750_000_000,
      nonce: '0123456789abcdef0123456789abcdef',
    };
    const headers = await signRequestWith(req, params, (base) => signWithDevice(signer, base));
    expect(headers).toEqual(signRequest(req, params, key.secretKey));
    const parsed = parseSignatureHeaders({
      'signature-input': headers['signature-input'],
      signature: headers.signature,
    });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(verifyRequestSignature(req, headers['content-digest'], parsed.value, key.publicKey).ok).toBe(true);
  });

  it('refuses an answer from another key, or one that is not 64 bytes (BAD_SIGNATURE): a misconfigured HSM slot or KMS key', async () => {
    const other = memoryDeviceSigner({ ...signer, secretKey: generateEd25519().secretKey });
    const wrongKey = { ...signer, sign: (m: Uint8Array) => other.sign(m) };
    await expect(signWithDevice(wrongKey, utf8('x'))).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    const short = { ...signer, sign: async () => fromHex('00'.repeat(63)) };
    await expect(signWithDevice(short, utf8('x'))).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    await expect(signIntentWithDevice(wrongKey, makeIntent(backend))).rejects.toMatchObject({
      code: 'BAD_SIGNATURE',
    });
  });
});
