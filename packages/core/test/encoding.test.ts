import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decode, decodeCanonical } from '../src/decode.js';
import { CustosError } from '../src/errors.js';
import { canonicalize, digestOf } from '../src/jcs.js';
import * as objects from '../src/objects.js';
import type { Schema } from '../src/schema.js';

interface Vectors {
  positives: {
    name: string;
    schema: string;
    digestType: string | null;
    digestVersion: number | null;
    input: string;
    canonical: string;
    digest: string | null;
  }[];
  negatives: { name: string; schema: string; input: string; code: string }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('./vectors/encoding.json', import.meta.url), 'utf8'),
) as Vectors;

function schemaNamed(name: string): Schema<unknown> {
  const s = (objects as unknown as Record<string, Schema<unknown>>)[name];
  if (s === undefined || typeof s.parse !== 'function') throw new Error(`no schema ${name}`);
  return s;
}

describe('encoding vectors (vectors/encoding.json)', () => {
  it('has a vector for every signed object type and every rejection rule', () => {
    expect(vectors.positives.map((p) => p.schema)).toEqual(
      expect.arrayContaining([
        'intent',
        'signedIntent',
        'approval',
        'governanceEntry',
        'auditEntry',
        'checkpoint',
      ]),
    );
    expect(new Set(vectors.negatives.map((n) => n.code)).size).toBeGreaterThanOrEqual(12);
  });

  describe.each(vectors.positives)('$name', (v) => {
    it('decodes the non-canonical spelling and re-encodes to the canonical bytes', () => {
      expect(canonicalize(decode(schemaNamed(v.schema), v.input))).toBe(v.canonical);
    });

    it('decodes the canonical bytes strictly and re-encodes them byte for byte', () => {
      expect(canonicalize(decodeCanonical(schemaNamed(v.schema), v.canonical))).toBe(v.canonical);
    });

    it('refuses the non-canonical spelling where only the canonical one may exist', () => {
      expect(() => decodeCanonical(schemaNamed(v.schema), v.input)).toThrow(
        expect.objectContaining({ code: 'NON_CANONICAL_ENCODING' }),
      );
    });

    it('has the digest sha256(prefix || canonical), computed independently with node:crypto', () => {
      if (v.digestType === null || v.digestVersion === null) {
        expect(v.digest).toBeNull();
        return;
      }
      const independent = createHash('sha256')
        .update(`custos/${v.digestType}/v${v.digestVersion}\n${v.canonical}`, 'utf8')
        .digest('hex');
      expect(v.digest).toBe(independent);
      expect(digestOf(v.digestType, v.digestVersion, JSON.parse(v.canonical))).toBe(independent);
    });
  });

  it.each(vectors.negatives)('refuses $name with $code', (v) => {
    let caught: unknown;
    try {
      decode(schemaNamed(v.schema), v.input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CustosError);
    expect((caught as CustosError).code).toBe(v.code);
  });
});
