/**
 * HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest
 * (RFC 9530), for every call a client or signer makes: no bearer token or
 * cookie alone can create, approve or change anything (THREATS 1-3).
 *
 * Covered components are fixed: "@method", "@path", "@query" and
 * "content-digest", with the parameters created, keyid, nonce and alg. A
 * verifier refuses any other component set rather than guessing what a
 * signer meant, so a signature can never cover less than this profile. What
 * RFC 9421 leaves to the signer is accepted: any label (one signature per
 * request: a second label is refused, not chosen among), and the components
 * and the parameters in any order. The signature base is rebuilt from the
 * Signature-Input as received: its lines in the order the inner list names
 * the components, and the "@signature-params" line is the inner list exactly
 * as received. That inner list must be serialized as RFC 8941 section 4
 * serializes it (single spaces between components, none elsewhere), so the
 * text received and its serialization are the same bytes.
 * Freshness (the created window) and replay (the nonce) are checked by the
 * server with its clock and its nonce store; this module only parses, builds
 * the signature base (RFC 9421 section 2.5) and checks the signature.
 */

import { utf8 } from './bytes.js';
import { accept, type Refusal, type Result, refuse } from './errors.js';
import { sha256 } from './hash.js';
import { signBytes, verifyEd25519 } from './keys.js';
import type { Hex } from './types.js';

export const SIGNATURE_COMPONENTS = ['@method', '@path', '@query', 'content-digest'] as const;
/** The signature parameters of this profile, each exactly once, in any order. */
export const SIGNATURE_PARAMETERS = ['created', 'keyid', 'nonce', 'alg'] as const;
/** The label this module signs under; a verifier accepts any one label. */
const LABEL = 'sig1';
const KEY_ID = /^[A-Za-z0-9._:@/-]{1,129}$/;
const NONCE = /^[0-9a-f]{32,64}$/;

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

/**
 * The signature base of RFC 9421 section 2.5: one `"<component>": <value>`
 * line per covered component, in the order given, then the
 * `"@signature-params"` line. Component identifiers here carry no parameters.
 */
export function buildSignatureBase(
  components: readonly (readonly [component: string, value: string])[],
  signatureParams: string,
): string {
  return [...components.map(([c, v]) => `"${c}": ${v}`), `"@signature-params": ${signatureParams}`].join(
    '\n',
  );
}

function componentValue(c: string, req: RequestToSign, digestHeader: string): string {
  switch (c) {
    case '@method':
      return req.method.toUpperCase();
    case '@path':
      return req.path;
    case '@query':
      return req.query;
    default:
      return digestHeader;
  }
}

/** The signature base this module's signer produces (components and parameters in the profile's order). */
export function signatureBase(req: RequestToSign, digestHeader: string, p: SignatureParams): string {
  return buildSignatureBase(
    SIGNATURE_COMPONENTS.map((c) => [c, componentValue(c, req, digestHeader)] as const),
    paramsString(p),
  );
}

/** The headers to send with a request signed by an Ed25519 key. */
export function signRequest(
  req: RequestToSign,
  p: SignatureParams,
  secretKey: Uint8Array,
): { 'content-digest': string; 'signature-input': string; signature: string } {
  if (!KEY_ID.test(p.keyId) || !NONCE.test(p.nonce)) {
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

/**
 * {@link signRequest} for a key this process does not hold: `sign` returns
 * the 64-byte Ed25519 signature of the signature base it is given (a
 * DeviceSigner's sign, an HSM, a KMS). The headers are the same.
 */
export async function signRequestWith(
  req: RequestToSign,
  p: SignatureParams,
  sign: (signatureBase: Uint8Array) => Promise<Uint8Array | Hex>,
): Promise<{ 'content-digest': string; 'signature-input': string; signature: string }> {
  if (!KEY_ID.test(p.keyId) || !NONCE.test(p.nonce)) {
    throw new TypeError('keyId or nonce has characters this profile does not allow');
  }
  const digestHeader = contentDigest(req.body);
  const sig = await sign(utf8(signatureBase(req, digestHeader, p)));
  const bytes = typeof sig === 'string' ? Buffer.from(sig, 'hex') : Buffer.from(sig);
  if (bytes.length !== 64) throw new TypeError('an Ed25519 signature is 64 bytes');
  return {
    'content-digest': digestHeader,
    'signature-input': `${LABEL}=${paramsString(p)}`,
    signature: `${LABEL}=:${bytes.toString('base64')}:`,
  };
}

export interface ParsedSignature extends SignatureParams {
  readonly signature: Uint8Array;
  /** The label the client chose (the dictionary key of both headers). */
  readonly label: string;
  /** The covered components in the order the Signature-Input names them. */
  readonly components: readonly string[];
  /** The inner list as received: the value of the "@signature-params" line. */
  readonly signatureParams: string;
}

/** One member of a Signature-Input field, read as RFC 8941 structured fields (see parseSignatureInput). */
export interface SignatureInput {
  readonly label: string;
  /** Component identifiers in the order received (no component parameters). */
  readonly components: readonly string[];
  /** Signature parameters in the order received; values are sf-integers or sf-strings. */
  readonly params: ReadonlyMap<string, number | string>;
  /** The inner list exactly as received. */
  readonly signatureParams: string;
}

const bad = (message: string): Refusal => refuse('BAD_SIGNATURE', message);

/** A cursor over a header value, reading the RFC 8941 pieces this profile uses. */
class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  peek(): string {
    return this.text[this.pos] ?? '';
  }
  done(): boolean {
    return this.pos >= this.text.length;
  }
  /** RFC 8941 sf-key. */
  key(): string | null {
    const m = /^[a-z*][a-z0-9_.*-]{0,63}/.exec(this.text.slice(this.pos, this.pos + 65));
    if (m === null) return null;
    if (/[a-z0-9_.*-]/.test(this.text[this.pos + m[0].length] ?? '')) return null;
    this.pos += m[0].length;
    return m[0];
  }
  /** RFC 8941 sf-string (section 4.2.5). */
  string(): string | null {
    if (this.peek() !== '"') return null;
    let out = '';
    for (let i = this.pos + 1; i < this.text.length; i++) {
      const c = this.text[i] as string;
      if (c === '\\') {
        const next = this.text[i + 1];
        if (next !== '"' && next !== '\\') return null;
        out += next;
        i++;
      } else if (c === '"') {
        this.pos = i + 1;
        return out;
      } else if (c < ' ' || c > '~') {
        return null;
      } else {
        out += c;
      }
    }
    return null;
  }
  /** RFC 8941 sf-integer (section 4.2.4); a decimal is not one. */
  integer(): number | null {
    const m = /^-?[0-9]{1,15}/.exec(this.text.slice(this.pos, this.pos + 16));
    if (m === null) return null;
    if (/[0-9.]/.test(this.text[this.pos + m[0].length] ?? '')) return null;
    this.pos += m[0].length;
    return Number(m[0]);
  }
  /** Optional whitespace between dictionary members (RFC 8941 section 4.2.2). */
  ows(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
}

/** Reads the label and `=` that start a dictionary member, after leading spaces. */
function memberLabel(r: Reader, field: string): Result<string> {
  while (r.peek() === ' ') r.pos++;
  const label = r.key();
  if (label === null || r.peek() !== '=') {
    return bad(`${field} must be one dictionary member, <label>=<value> (RFC 9421 section 4)`);
  }
  r.pos++;
  return accept(label);
}

/** After a member: nothing but spaces may follow; a comma means a second signature. */
function memberEnd(r: Reader, field: string): Refusal | null {
  r.ows();
  if (r.done()) return null;
  if (r.peek() === ',') {
    return bad(
      `${field} carries more than one signature; this server takes exactly one (one label) per request`,
    );
  }
  return bad(`${field} has unexpected text at position ${r.pos}`);
}

/**
 * Reads a Signature-Input field of exactly one member (RFC 9421 section 4.1)
 * whose inner list names components without parameters and whose signature
 * parameters are sf-integers or sf-strings, serialized as RFC 8941 section 4
 * does. Any component and parameter names are accepted here: the profile is
 * checked by parseSignatureHeaders. Refusals are BAD_SIGNATURE.
 */
export function parseSignatureInput(value: string): Result<SignatureInput> {
  const field = 'Signature-Input';
  const r = new Reader(value);
  const label = memberLabel(r, field);
  if (!label.ok) return label;
  const start = r.pos;
  if (r.peek() !== '(') return bad(`${field} must be an inner list of components with parameters`);
  r.pos++;
  const components: string[] = [];
  while (r.peek() !== ')') {
    if (components.length > 0) {
      if (r.peek() !== ' ') return bad(`${field}: components are separated by one space`);
      r.pos++;
    }
    const c = r.string();
    if (c === null) return bad(`${field}: a component identifier is a quoted string`);
    if (r.peek() === ';') return bad(`${field}: component parameters (such as ;sf or ;req) are not used`);
    if (components.includes(c)) return bad(`${field} names the component "${c}" twice`);
    components.push(c);
    if (components.length > 16) return bad(`${field} names too many components`);
  }
  r.pos++;
  const params = new Map<string, number | string>();
  while (r.peek() === ';') {
    r.pos++;
    const key = r.key();
    if (key === null || r.peek() !== '=') return bad(`${field}: a parameter is ;<name>=<value>`);
    r.pos++;
    const v = r.peek() === '"' ? r.string() : r.integer();
    if (v === null) return bad(`${field}: the parameter ${key} must be an integer or a quoted string`);
    if (params.has(key)) return bad(`${field} has the parameter ${key} twice`);
    params.set(key, v);
    if (params.size > 16) return bad(`${field} has too many parameters`);
  }
  const signatureParams = value.slice(start, r.pos);
  const end = memberEnd(r, field);
  if (end !== null) return end;
  return accept({ label: label.value, components, params, signatureParams });
}

/** Reads a Signature field of exactly one member whose value is an sf-binary (RFC 9421 section 4.2). */
export function parseSignatureValue(value: string): Result<{ label: string; signature: Uint8Array }> {
  const field = 'Signature';
  const r = new Reader(value);
  const label = memberLabel(r, field);
  if (!label.ok) return label;
  const m = /^:([A-Za-z0-9+/]*={0,2}):/.exec(value.slice(r.pos));
  if (m === null || (m[1] as string).length % 4 !== 0) {
    return bad(`${field} must be a byte sequence, :<base64>:`);
  }
  r.pos += m[0].length;
  const end = memberEnd(r, field);
  if (end !== null) return end;
  return accept({ label: label.value, signature: new Uint8Array(Buffer.from(m[1] as string, 'base64')) });
}

/**
 * Parses the Signature-Input and Signature headers and holds them to this
 * profile (the module header). Missing headers are SIGNATURE_REQUIRED;
 * anything else off-profile is BAD_SIGNATURE, with a message that says what.
 */
export function parseSignatureHeaders(headers: {
  'signature-input'?: string | undefined;
  signature?: string | undefined;
}): Result<ParsedSignature> {
  const inputHeader = headers['signature-input'];
  const sigHeader = headers.signature;
  if (inputHeader === undefined || sigHeader === undefined) {
    return refuse(
      'SIGNATURE_REQUIRED',
      'this call must be signed by a device key (RFC 9421 HTTP message signature)',
    );
  }
  const input = parseSignatureInput(inputHeader);
  if (!input.ok) return input;
  const sig = parseSignatureValue(sigHeader);
  if (!sig.ok) return sig;
  const { label, components, params, signatureParams } = input.value;
  if (sig.value.label !== label) {
    return bad(`Signature has the label ${sig.value.label} and Signature-Input ${label}: they must match`);
  }
  const want: readonly string[] = SIGNATURE_COMPONENTS;
  if (components.length !== want.length || !components.every((c) => want.includes(c))) {
    return bad(`the signature must cover exactly ${want.map((c) => `"${c}"`).join(' ')} (in any order)`);
  }
  const names: readonly string[] = SIGNATURE_PARAMETERS;
  const extra = [...params.keys()].filter((k) => !names.includes(k));
  const missing = names.filter((k) => !params.has(k));
  if (extra.length > 0 || missing.length > 0) {
    return bad(
      `the signature parameters must be exactly created, keyid, nonce and alg (in any order)${
        missing.length > 0 ? `; missing: ${missing.join(', ')}` : ''
      }${extra.length > 0 ? `; not in this profile: ${extra.join(', ')}` : ''}`,
    );
  }
  const created = params.get('created');
  const keyId = params.get('keyid');
  const nonce = params.get('nonce');
  if (typeof created !== 'number' || created < 0 || created > 999_999_999_999) {
    return bad('created must be an integer number of seconds since the epoch');
  }
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) return bad('keyid must be a quoted key id');
  if (typeof nonce !== 'string' || !NONCE.test(nonce)) {
    return bad('nonce must be a quoted string of 32 to 64 lowercase hex digits');
  }
  if (params.get('alg') !== 'ed25519') return bad('alg must be "ed25519"');
  if (sig.value.signature.length !== 64) return bad('the signature must be 64 bytes (Ed25519)');
  return accept({
    created,
    keyId,
    nonce,
    signature: sig.value.signature,
    label,
    components,
    signatureParams,
  });
}

/**
 * Checks a parsed signature against the request and the key's Ed25519 public
 * key, and the Content-Digest against the body. The signature base is built
 * in the order the client's Signature-Input gave, with its inner list as
 * received. Freshness and nonce reuse are the caller's to check.
 */
export function verifyRequestSignature(
  req: RequestToSign,
  digestHeader: string | undefined,
  parsed: ParsedSignature,
  publicKeyHex: string,
): Result<true> {
  const expected = contentDigest(req.body);
  if (digestHeader !== expected) return refuse('BAD_SIGNATURE', 'Content-Digest does not match the body');
  const base = buildSignatureBase(
    parsed.components.map((c) => [c, componentValue(c, req, expected)] as const),
    parsed.signatureParams,
  );
  return verifyEd25519(publicKeyHex, utf8(base), Buffer.from(parsed.signature).toString('hex'))
    ? accept(true)
    : refuse('BAD_SIGNATURE', 'the request signature does not verify');
}
