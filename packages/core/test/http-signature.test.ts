/**
 * RFC 9421 request signatures: RFC 9421's own Ed25519 example (Appendix
 * B.2.6, vectors/rfc9421-b26.json), then this profile: any label, components
 * and parameters in any order, the "@signature-params" line exactly as
 * received, and a stable refusal for anything off-profile (a missing or extra
 * component or parameter, a second label, a malformed field).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../src/bytes.js';
import {
  buildSignatureBase,
  contentDigest,
  type ParsedSignature,
  parseSignatureHeaders,
  parseSignatureInput,
  parseSignatureValue,
  type RequestToSign,
  SIGNATURE_COMPONENTS,
  signRequest,
  verifyRequestSignature,
} from '../src/http-signature.js';
import { generateEd25519, signBytes, verifyEd25519 } from '../src/keys.js';

interface B26 {
  key: { id: string; publicKeySpki: string; privateKeyPkcs8: string };
  request: { method: string; target: string; headers: [string, string][]; body: string };
  signatureInput: string;
  signature: string;
  signatureBase: string;
}
const b26 = JSON.parse(readFileSync(new URL('./vectors/rfc9421-b26.json', import.meta.url), 'utf8')) as B26;

/** The raw key inside the RFC's SPKI (12-byte prefix) and PKCS #8 (16-byte prefix) encodings. */
const rfcPublicKey = Buffer.from(b26.key.publicKeySpki, 'base64').subarray(12).toString('hex');
const rfcSecretKey = new Uint8Array(Buffer.from(b26.key.privateKeyPkcs8, 'base64').subarray(16));

/** A component's value from the B.2 request (RFC 9421 sections 2.1 and 2.2). */
function b26Component(name: string): string {
  const { method, target, headers } = b26.request;
  const header = (n: string): string => {
    const found = headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v.trim());
    if (found.length === 0) throw new Error(`no ${n} header`);
    return found.join(', ');
  };
  switch (name) {
    case '@method':
      return method;
    case '@path':
      return target.split('?')[0] as string;
    case '@authority':
      return header('host').toLowerCase();
    default:
      return header(name);
  }
}

describe('RFC 9421 Appendix B.2.6 (Ed25519), from the RFC', () => {
  it('reads the Signature-Input and Signature the RFC gives', () => {
    const input = parseSignatureInput(b26.signatureInput);
    expect(input).toEqual({
      ok: true,
      value: {
        label: 'sig-b26',
        components: ['date', '@method', '@path', '@authority', 'content-type', 'content-length'],
        params: new Map<string, number | string>([
          ['created', 1618884473],
          ['keyid', 'test-key-ed25519'],
        ]),
        signatureParams: b26.signatureInput.slice('sig-b26='.length),
      },
    });
    const sig = parseSignatureValue(b26.signature);
    expect(sig.ok && sig.value.label).toBe('sig-b26');
    expect(sig.ok && sig.value.signature.length).toBe(64);
  });

  it('rebuilds the signature base byte for byte, verifies the signature and reproduces it with the key', () => {
    const input = parseSignatureInput(b26.signatureInput);
    const sig = parseSignatureValue(b26.signature);
    if (!input.ok || !sig.ok) throw new Error('the RFC example must parse');
    const base = buildSignatureBase(
      input.value.components.map((c) => [c, b26Component(c)] as const),
      input.value.signatureParams,
    );
    expect(base).toBe(b26.signatureBase);
    const sigHex = Buffer.from(sig.value.signature).toString('hex');
    expect(verifyEd25519(rfcPublicKey, utf8(base), sigHex)).toBe(true);
    expect(signBytes(rfcSecretKey, utf8(base))).toBe(sigHex);
    // One byte of the base changed (created) and the RFC's signature no longer verifies.
    expect(verifyEd25519(rfcPublicKey, utf8(base.replace('1618884473', '1618884474')), sigHex)).toBe(false);
  });

  it("is refused by this server's profile, which requires other components, with BAD_SIGNATURE", () => {
    const r = parseSignatureHeaders({ 'signature-input': b26.signatureInput, signature: b26.signature });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe('BAD_SIGNATURE');
    expect(!r.ok && r.message).toMatch(/must cover exactly "@method" "@path" "@query" "content-digest"/);
  });
});

const key = generateEd25519();
const req: RequestToSign = {
  method: 'POST',
  path: '/v1/intents',
  query: '?',
  body: utf8('{"a":1}'),
};
const NONCE = '0123456789abcdef0123456789abcdef';
const CREATED = 1_767_225_600;
const KEY_ID = 'member:alice/laptop';

/** A param as a client would serialize it (RFC 8941). */
const PARAMS: Readonly<Record<string, string>> = {
  created: `created=${CREATED}`,
  keyid: `keyid="${KEY_ID}"`,
  nonce: `nonce="${NONCE}"`,
  alg: 'alg="ed25519"',
};

function componentOf(c: string, r: RequestToSign = req): string {
  if (c === '@method') return r.method;
  if (c === '@path') return r.path;
  if (c === '@query') return r.query;
  if (c === 'content-digest') return contentDigest(r.body);
  if (c === 'content-type') return 'application/json';
  return '';
}

/**
 * Signs `req` as an arbitrary RFC 9421 client would: its own label, its own
 * component and parameter order; `signedParams` is what it signed when that
 * differs from what it sends.
 */
function clientSign(
  o: {
    label?: string;
    components?: readonly string[];
    params?: readonly string[];
    signedParams?: string;
    r?: RequestToSign;
  } = {},
): { 'signature-input': string; signature: string; 'content-digest': string } {
  const label = o.label ?? 'sig1';
  const r = o.r ?? req;
  const components = o.components ?? SIGNATURE_COMPONENTS;
  const params = o.params ?? ['created', 'keyid', 'nonce', 'alg'];
  const inner = `(${components.map((c) => `"${c}"`).join(' ')})${params.map((p) => `;${PARAMS[p] ?? p}`).join('')}`;
  const base = buildSignatureBase(
    components.map((c) => [c, componentOf(c, r)] as const),
    o.signedParams ?? inner,
  );
  const sig = Buffer.from(signBytes(key.secretKey, utf8(base)), 'hex').toString('base64');
  return {
    'signature-input': `${label}=${inner}`,
    signature: `${label}=:${sig}:`,
    'content-digest': contentDigest(r.body),
  };
}

function check(h: { 'signature-input'?: string; signature?: string; 'content-digest'?: string }) {
  const parsed = parseSignatureHeaders(h);
  if (!parsed.ok) return parsed;
  return verifyRequestSignature(req, h['content-digest'], parsed.value, key.publicKey);
}

function refusedWith(h: Parameters<typeof check>[0]): { code: string; message: string } {
  const r = check(h);
  if (r.ok) throw new Error('accepted');
  return { code: r.code, message: r.message };
}

const permutation = <T>(items: readonly T[]) =>
  fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });
const sfKey = fc.stringMatching(/^[a-z*][a-z0-9_.*-]{0,20}$/);

describe("this server's profile", () => {
  it("accepts this module's own signRequest (label sig1, the profile's order) and gives the parsed fields", () => {
    const headers = signRequest(req, { keyId: KEY_ID, created: CREATED, nonce: NONCE }, key.secretKey);
    const parsed = parseSignatureHeaders(headers);
    expect(parsed.ok).toBe(true);
    const p = (parsed as { value: ParsedSignature }).value;
    expect([p.label, p.keyId, p.created, p.nonce, p.components]).toEqual([
      'sig1',
      KEY_ID,
      CREATED,
      NONCE,
      [...SIGNATURE_COMPONENTS],
    ]);
    expect(verifyRequestSignature(req, headers['content-digest'], p, key.publicKey)).toEqual({
      ok: true,
      value: true,
    });
  });

  it('accepts any label and the components and parameters in any order', () => {
    fc.assert(
      fc.property(
        sfKey,
        permutation(SIGNATURE_COMPONENTS),
        permutation(['created', 'keyid', 'nonce', 'alg']),
        (label, components, params) => {
          const h = clientSign({ label, components, params });
          expect(check(h)).toEqual({ ok: true, value: true });
          const parsed = parseSignatureHeaders(h);
          expect(parsed.ok && [parsed.value.label, parsed.value.components]).toEqual([label, components]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('builds the "@signature-params" line from the inner list as received, not a re-ordered one', () => {
    // The client signed one parameter order and sends another: the signature no longer matches.
    const h = clientSign({
      params: ['nonce', 'alg', 'keyid', 'created'],
      signedParams: `("@method" "@path" "@query" "content-digest");${PARAMS.created};${PARAMS.keyid};${PARAMS.nonce};${PARAMS.alg}`,
    });
    expect(refusedWith(h)).toEqual({
      code: 'BAD_SIGNATURE',
      message: 'the request signature does not verify',
    });
  });

  it('takes spaces around the dictionary member, as RFC 8941 allows', () => {
    const h = clientSign({ label: 'custos' });
    expect(
      check({ ...h, 'signature-input': ` ${h['signature-input']}  `, signature: `  ${h.signature}\t` }),
    ).toEqual({ ok: true, value: true });
  });

  it('refuses a signature missing a required component, or with one more, with BAD_SIGNATURE', () => {
    for (const components of [
      ['@method', '@path', '@query'],
      ['@method', '@path', 'content-digest'],
      ['@method', '@path', '@query', 'content-digest', 'content-type'],
      ['@method', '@target-uri', '@query', 'content-digest'],
      [],
    ]) {
      const r = refusedWith(clientSign({ components }));
      expect(r.code).toBe('BAD_SIGNATURE');
      expect(r.message).toMatch(/must cover exactly/);
    }
    expect(refusedWith(clientSign({ components: ['@method', '@path', '@query', '@query'] }))).toEqual({
      code: 'BAD_SIGNATURE',
      message: 'Signature-Input names the component "@query" twice',
    });
  });

  it('refuses a signature missing a required parameter, or with one the profile lacks, with BAD_SIGNATURE', () => {
    for (const missing of ['created', 'keyid', 'nonce', 'alg']) {
      const params = ['created', 'keyid', 'nonce', 'alg'].filter((p) => p !== missing);
      const r = refusedWith(clientSign({ params }));
      expect(r.code).toBe('BAD_SIGNATURE');
      expect(r.message).toContain(`missing: ${missing}`);
    }
    for (const extra of ['expires=1767225900', 'tag="custos"']) {
      const r = refusedWith(clientSign({ params: ['created', 'keyid', 'nonce', 'alg', extra] }));
      expect(r.code).toBe('BAD_SIGNATURE');
      expect(r.message).toContain('not in this profile');
    }
    expect(refusedWith(clientSign({ params: ['created', 'keyid', 'nonce', 'alg', 'nonce'] }))).toEqual({
      code: 'BAD_SIGNATURE',
      message: 'Signature-Input has the parameter nonce twice',
    });
    const wrong = (p: string) => ['created', 'keyid', 'nonce', p];
    expect(refusedWith(clientSign({ params: wrong('alg="rsa-pss-sha512"') })).message).toBe(
      'alg must be "ed25519"',
    );
    expect(refusedWith(clientSign({ params: ['created', 'keyid', 'alg', 'nonce="xyz"'] })).message).toMatch(
      /^nonce must be/,
    );
    expect(refusedWith(clientSign({ params: ['keyid', 'nonce', 'alg', 'created="1"'] })).message).toMatch(
      /^created must be/,
    );
  });

  it('refuses two signatures (two labels) in one request with BAD_SIGNATURE, whichever header has them', () => {
    const one = clientSign({ label: 'a' });
    const two = clientSign({ label: 'b' });
    const both = (k: 'signature-input' | 'signature') => `${one[k]}, ${two[k]}`;
    for (const h of [
      { ...one, 'signature-input': both('signature-input'), signature: both('signature') },
      { ...one, 'signature-input': both('signature-input') },
      { ...one, signature: both('signature') },
      // A header repeated on the wire arrives joined with ", " (RFC 9110 section 5.3).
      { ...one, 'signature-input': `${one['signature-input']}, ${one['signature-input']}` },
    ]) {
      const r = refusedWith(h);
      expect(r.code).toBe('BAD_SIGNATURE');
      expect(r.message).toMatch(/carries more than one signature/);
    }
    expect(refusedWith({ ...one, signature: two.signature })).toEqual({
      code: 'BAD_SIGNATURE',
      message: 'Signature has the label b and Signature-Input a: they must match',
    });
  });

  it('refuses malformed fields with BAD_SIGNATURE and missing ones with SIGNATURE_REQUIRED', () => {
    const h = clientSign();
    const inner = h['signature-input'].slice('sig1='.length);
    for (const input of [
      `Sig1=${inner}`,
      `sig1=${inner.replace('"@path" "@query"', '"@path"  "@query"')}`,
      `sig1=${inner.replace('(', '( ')}`,
      `sig1=${inner.replace(';created', '; created')}`,
      `sig1=${inner.replace('"content-digest"', '"content-digest";sf')}`,
      `sig1=${inner.replace('"@method"', '@method')}`,
      `sig1=${inner.replace(')', '')}`,
      `sig1=${inner};`,
      `sig1=${inner} x`,
      `sig1=${inner.replace(`nonce="${NONCE}"`, `nonce=${NONCE}`)}`,
      `sig1=${inner.replace(`created=${CREATED}`, `created=${CREATED}.5`)}`,
      `sig1=${inner.replace(`created=${CREATED}`, 'created')}`,
      `sig1="${inner}"`,
      'sig1',
      '',
    ]) {
      expect(refusedWith({ ...h, 'signature-input': input }).code).toBe('BAD_SIGNATURE');
    }
    for (const signature of [
      h.signature.replace('sig1=:', 'sig1='),
      h.signature.replace(/==:$/, ':'),
      h.signature.replace(/:$/, ''),
      'sig1=:AAAA:',
      `${h.signature};x=1`,
    ]) {
      expect(refusedWith({ ...h, signature }).code).toBe('BAD_SIGNATURE');
    }
    expect(refusedWith({ 'signature-input': h['signature-input'] }).code).toBe('SIGNATURE_REQUIRED');
    expect(refusedWith({ signature: h.signature }).code).toBe('SIGNATURE_REQUIRED');
  });

  it('never throws on arbitrary header text (property)', () => {
    const h = clientSign();
    const pieces = fc.constantFrom(
      'sig1=',
      '(',
      ')',
      '"@method"',
      '"@query"',
      ' ',
      ';',
      'created=1',
      'nonce="',
      ',',
      ':',
      '\\',
      '"',
      '=',
      h['signature-input'],
      h.signature,
    );
    const text = fc.oneof(
      fc.string(),
      fc.array(pieces, { maxLength: 12 }).map((p) => p.join('')),
    );
    fc.assert(
      fc.property(text, text, (input, signature) => {
        const r = check({ ...h, 'signature-input': input, signature });
        if (!r.ok) expect(['BAD_SIGNATURE', 'SIGNATURE_REQUIRED']).toContain(r.code);
      }),
      { numRuns: 500 },
    );
  });
});
