/**
 * HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest
 * (RFC 9530), for every call a client or signer makes: no bearer token or
 * cookie alone can create, approve or change anything (THREATS 1-3).
 *
 * Covered components are fixed: "@method", "@path", "@query" and
 * "content-digest", with the parameters created, keyid, nonce and alg. A
 * verifier refuses any other component list rather than guessing what a
 * signer meant, so a signature can never cover less than this profile.
 * Freshness (the created window) and replay (the nonce) are checked by the
 * server with its clock and its nonce store; this module only parses, builds
 * the signature base (RFC 9421 section 2.5) and checks the signature.
 */

import { utf8 } from './bytes.js';
import { accept, type Result, refuse } from './errors.js';
import { sha256 } from './hash.js';
import { signBytes, verifyEd25519 } from './keys.js';

export const SIGNATURE_COMPONENTS = ['@method', '@path', '@query', 'content-digest'] as const;
const LABEL = 'sig1';

export interface RequestToSign {
  readonly method: string;
  /** The path, e.g. /v1/intents. */
  readonly path: string;
  /** The query with its leading '?', or '?' when there is none (RFC 9421 section 2.2.7). */
  readonly query: string;
  readonly body: Uint8Array;
}

export interface SignatureParams {
  readonly keyId: string;
  /** Seconds since the epoch. */
  readonly created: number;
  /** At least 128 random bits, hex. */
  readonly nonce: string;
}

/** Content-Digest header value for a body (RFC 9530, sha-256). */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${Buffer.from(sha256(body)).toString('base64')}:`;
}

function paramsString(p: SignatureParams): string {
  const components = SIGNATURE_COMPONENTS.map((c) => `"${c}"`).join(' ');
  return `(${components});created=${p.created};keyid="${p.keyId}";nonce="${p.nonce}";alg="ed25519"`;
}

/** The signature base of RFC 9421 section 2.5 for this profile. */
export function signatureBase(req: RequestToSign, digestHeader: string, p: SignatureParams): string {
  return [
    `"@method": ${req.method.toUpperCase()}`,
    `"@path": ${req.path}`,
    `"@query": ${req.query}`,
    `"content-digest": ${digestHeader}`,
    `"@signature-params": ${paramsString(p)}`,
  ].join('\n');
}

/** The headers to send with a request signed by an Ed25519 key. */
export function signRequest(
  req: RequestToSign,
  p: SignatureParams,
  secretKey: Uint8Array,
): { 'content-digest': string; 'signature-input': string; signature: string } {
  if (!/^[A-Za-z0-9._:@/-]{1,129}$/.test(p.keyId) || !/^[0-9a-f]{32,64}$/.test(p.nonce)) {
    throw new TypeError('keyId or nonce has characters this profile does not allow');
  }
  const digestHeader = contentDigest(req.body);
  const sig = signBytes(secretKey, utf8(signatureBase(req, digestHeader, p)));
  return {
    'content-digest': digestHeader,
    'signature-input': `${LABEL}=${paramsString(p)}`,
    signature: `${LABEL}=:${Buffer.from(sig, 'hex').toString('base64')}:`,
  };
}

export interface ParsedSignature extends SignatureParams {
  readonly signature: Uint8Array;
}

const INPUT_RE =
  /^sig1=\("@method" "@path" "@query" "content-digest"\);created=(\d{1,12});keyid="([A-Za-z0-9._:@/-]{1,129})";nonce="([0-9a-f]{32,64})";alg="ed25519"$/;
const SIG_RE = /^sig1=:([A-Za-z0-9+/]{86}==):$/;

/**
 * Parses the Signature-Input and Signature headers of this profile. Missing
 * headers are SIGNATURE_REQUIRED; anything else off-profile is BAD_SIGNATURE.
 */
export function parseSignatureHeaders(headers: {
  'signature-input'?: string | undefined;
  signature?: string | undefined;
}): Result<ParsedSignature> {
  const input = headers['signature-input'];
  const sig = headers.signature;
  if (input === undefined || sig === undefined) {
    return refuse(
      'SIGNATURE_REQUIRED',
      'this call must be signed by a device key (RFC 9421 HTTP message signature)',
    );
  }
  const m = INPUT_RE.exec(input);
  const s = SIG_RE.exec(sig);
  if (m === null || s === null) {
    return refuse('BAD_SIGNATURE', 'Signature-Input or Signature is not in the form this server accepts');
  }
  return accept({
    created: Number(m[1]),
    keyId: m[2] as string,
    nonce: m[3] as string,
    signature: new Uint8Array(Buffer.from(s[1] as string, 'base64')),
  });
}

/**
 * Checks a parsed signature against the request and the key's Ed25519 public
 * key, and the Content-Digest against the body. Freshness and nonce reuse are
 * the caller's to check.
 */
export function verifyRequestSignature(
  req: RequestToSign,
  digestHeader: string | undefined,
  parsed: ParsedSignature,
  publicKeyHex: string,
): Result<true> {
  const expected = contentDigest(req.body);
  if (digestHeader !== expected) return refuse('BAD_SIGNATURE', 'Content-Digest does not match the body');
  const base = signatureBase(req, expected, parsed);
  return verifyEd25519(publicKeyHex, utf8(base), Buffer.from(parsed.signature).toString('hex'))
    ? accept(true)
    : refuse('BAD_SIGNATURE', 'the request signature does not verify');
}
