/**
 * Fuzzing of every core decoder that takes outside bytes: intents, approvals,
 * governance entries, signer jobs and results, checkpoints, policies. Inputs
 * are random bytes, and valid canonical documents mutated byte by byte (the
 * mutations that find parser bugs: a character flipped, dropped or repeated,
 * a chunk moved). Every input must either decode or be refused with a
 * CustosError carrying a known code; nothing else may escape.
 *
 * The budget is fixed for CI (FUZZ_RUNS, default 1500 per target) and can be
 * raised on demand: `FUZZ_RUNS=200000 npx vitest run packages/core/test/fuzz.test.ts`.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode } from '../src/decode.js';
import { CustosError, isErrorCode } from '../src/errors.js';
import { signerJob, signerResult } from '../src/jobs.js';
import * as objects from '../src/objects.js';
import type { Schema } from '../src/schema.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);

interface Vectors {
  positives: { schema: string; canonical: string }[];
}
const vectors = JSON.parse(
  readFileSync(new URL('./vectors/encoding.json', import.meta.url), 'utf8'),
) as Vectors;

const targets: Record<string, Schema<unknown>> = {
  intent: objects.intent,
  signedIntent: objects.signedIntent,
  approval: objects.approval,
  signedApproval: objects.signedApproval,
  governanceEntry: objects.governanceEntry,
  signedGovernanceEntry: objects.signedGovernanceEntry,
  policy: objects.policy,
  auditEntry: objects.auditEntry,
  checkpoint: objects.checkpoint,
  signerJob,
  signerResult,
};

/** Decodes and returns 'ok' or the refusal code; anything but a CustosError fails the test. */
function outcome(schema: Schema<unknown>, input: Uint8Array): string {
  try {
    decode(schema, input);
    return 'ok';
  } catch (err) {
    if (!(err instanceof CustosError)) throw err;
    expect(isErrorCode(err.code)).toBe(true);
    return err.code;
  }
}

const encoder = new TextEncoder();

/** A mutation of a seed document's bytes. */
const mutation = (seed: Uint8Array) =>
  fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      at: fc.nat(seed.length - 1),
      byte: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      kind: fc.constant('drop' as const),
      at: fc.nat(seed.length - 1),
      len: fc.integer({ min: 1, max: 16 }),
    }),
    fc.record({
      kind: fc.constant('repeat' as const),
      at: fc.nat(seed.length - 1),
      len: fc.integer({ min: 1, max: 32 }),
    }),
    fc.record({
      kind: fc.constant('ascii' as const),
      at: fc.nat(seed.length - 1),
      ch: fc.constantFrom(...'{}[]",:0123456789-.eE\\u \t\n'),
    }),
  );

function apply(
  seed: Uint8Array,
  m: { kind: string; at: number; byte?: number; len?: number; ch?: string },
): Uint8Array {
  const out = Array.from(seed);
  if (m.kind === 'flip') out[m.at] = m.byte ?? 0;
  else if (m.kind === 'drop') out.splice(m.at, m.len ?? 1);
  else if (m.kind === 'repeat') out.splice(m.at, 0, ...out.slice(m.at, m.at + (m.len ?? 1)));
  else out.splice(m.at, 0, ...encoder.encode(m.ch ?? ' '));
  return new Uint8Array(out);
}

describe('fuzzing core decoders', () => {
  it.each(Object.keys(targets))(
    '%s: random bytes are decoded or refused with a code, never a crash',
    (name) => {
      const schema = targets[name]!;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
          outcome(schema, bytes);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it.each(vectors.positives.map((p) => [p.schema, p.canonical] as const))(
    '%s: mutated valid documents are decoded or refused with a code, never a crash',
    (name, canonical) => {
      const schema = targets[name]!;
      const seed = encoder.encode(canonical);
      expect(outcome(schema, seed)).toBe('ok');
      fc.assert(
        fc.property(fc.array(mutation(seed), { minLength: 1, maxLength: 4 }), (ms) => {
          let bytes: Uint8Array = seed;
          for (const m of ms)
            bytes = bytes.length > 0 ? apply(bytes, { ...m, at: Math.min(m.at, bytes.length - 1) }) : bytes;
          outcome(schema, bytes);
        }),
        { numRuns: RUNS },
      );
    },
  );
});
