/**
 * A small strict schema language: each schema checks an `unknown` value and
 * returns it typed, or throws a CustosError with a stable code and the path of
 * the offending field. The same schemas yield JSON Schema (2020-12) for the
 * OpenAPI document, so what is documented is what is enforced.
 *
 * Strict by default: unknown fields, wrong types, non-NFC strings, oversized
 * strings and arrays are all refused. There is no coercion.
 */
import { CustosError, type ErrorCode } from './errors.js';
import type { Brand } from './types.js';

export type JsonSchema = { readonly [key: string]: unknown };

export interface Schema<T> {
  readonly jsonSchema: JsonSchema;
  parse(value: unknown, path?: string): T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

function fail(code: ErrorCode, path: string, message: string): never {
  throw new CustosError(code, `${path || 'value'}: ${message}`, { path: path || '$' });
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export interface StringOptions {
  readonly min?: number;
  readonly max: number;
  readonly pattern?: RegExp;
  /** Code used when the pattern does not match (default INVALID_VALUE). */
  readonly patternCode?: ErrorCode;
  readonly description?: string;
}

/** A string, NFC-normalized, with a length limit in UTF-16 code units. */
export function string(opts: StringOptions): Schema<string> {
  const json: Record<string, unknown> = { type: 'string', maxLength: opts.max };
  if (opts.min !== undefined) json.minLength = opts.min;
  if (opts.pattern !== undefined) json.pattern = opts.pattern.source;
  if (opts.description !== undefined) json.description = opts.description;
  return {
    jsonSchema: json,
    parse(value, path = '') {
      if (typeof value !== 'string') fail('WRONG_TYPE', path, `expected a string, got ${typeName(value)}`);
      if (value.length > opts.max) fail('TOO_LARGE', path, `longer than ${opts.max} characters`);
      if (opts.min !== undefined && value.length < opts.min) {
        fail('INVALID_VALUE', path, `shorter than ${opts.min} characters`);
      }
      if (!value.isWellFormed()) fail('LONE_SURROGATE', path, 'holds a lone surrogate');
      if (value.normalize('NFC') !== value) fail('NON_NFC_STRING', path, 'is not in Unicode NFC form');
      if (opts.pattern !== undefined && !opts.pattern.test(value)) {
        fail(opts.patternCode ?? 'INVALID_VALUE', path, `does not match ${opts.pattern.source}`);
      }
      return value;
    },
  };
}

/** A string schema whose result carries a brand. */
export function branded<B extends string>(opts: StringOptions): Schema<Brand<string, B>> {
  return string(opts) as Schema<Brand<string, B>>;
}

export interface IntOptions {
  readonly min: number;
  readonly max: number;
  readonly description?: string;
}

export function int(opts: IntOptions): Schema<number> {
  const json: Record<string, unknown> = { type: 'integer', minimum: opts.min, maximum: opts.max };
  if (opts.description !== undefined) json.description = opts.description;
  return {
    jsonSchema: json,
    parse(value, path = '') {
      if (typeof value !== 'number') fail('WRONG_TYPE', path, `expected an integer, got ${typeName(value)}`);
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
        fail('NON_CANONICAL_NUMBER', path, 'is not a safe integer');
      }
      if (value < opts.min || value > opts.max) {
        fail('INVALID_VALUE', path, `must be between ${opts.min} and ${opts.max}`);
      }
      return value;
    },
  };
}

export function boolean(): Schema<boolean> {
  return {
    jsonSchema: { type: 'boolean' },
    parse(value, path = '') {
      if (typeof value !== 'boolean') fail('WRONG_TYPE', path, `expected a boolean, got ${typeName(value)}`);
      return value;
    },
  };
}

export function literal<const V extends string | number | boolean>(expected: V): Schema<V> {
  return {
    jsonSchema: { const: expected },
    parse(value, path = '') {
      if (value !== expected) {
        if (typeof value !== typeof expected) {
          fail('WRONG_TYPE', path, `expected ${JSON.stringify(expected)}, got ${typeName(value)}`);
        }
        fail('INVALID_VALUE', path, `expected ${JSON.stringify(expected)}`);
      }
      return expected;
    },
  };
}

export function oneOf<const V extends readonly string[]>(values: V): Schema<V[number]> {
  const set: ReadonlySet<string> = new Set(values);
  return {
    jsonSchema: { type: 'string', enum: [...values] },
    parse(value, path = '') {
      if (typeof value !== 'string') fail('WRONG_TYPE', path, `expected a string, got ${typeName(value)}`);
      if (!set.has(value)) fail('INVALID_VALUE', path, `must be one of ${values.join(', ')}`);
      return value as V[number];
    },
  };
}

export interface ArrayOptions {
  readonly min?: number;
  readonly max: number;
  /** Refuse two equal elements (compared by their canonical JSON). */
  readonly unique?: boolean;
}

export function array<T>(item: Schema<T>, opts: ArrayOptions): Schema<T[]> {
  const json: Record<string, unknown> = { type: 'array', items: item.jsonSchema, maxItems: opts.max };
  if (opts.min !== undefined) json.minItems = opts.min;
  if (opts.unique === true) json.uniqueItems = true;
  return {
    jsonSchema: json,
    parse(value, path = '') {
      if (!Array.isArray(value)) fail('WRONG_TYPE', path, `expected an array, got ${typeName(value)}`);
      if (value.length > opts.max) fail('TOO_LARGE', path, `has more than ${opts.max} items`);
      if (opts.min !== undefined && value.length < opts.min) {
        fail('INVALID_VALUE', path, `needs at least ${opts.min} items`);
      }
      const out = value.map((v, i) => item.parse(v, `${path}[${i}]`));
      if (opts.unique === true) {
        const seen = new Set<string>();
        for (const [i, v] of out.entries()) {
          const key = JSON.stringify(v);
          if (seen.has(key)) fail('INVALID_VALUE', `${path}[${i}]`, 'repeats an earlier item');
          seen.add(key);
        }
      }
      return out;
    },
  };
}

type Shape = { readonly [key: string]: Schema<unknown> };
export type ObjectOf<R extends Shape, O extends Shape> = Simplify<
  { -readonly [K in keyof R]: Infer<R[K]> } & { -readonly [K in keyof O]?: Infer<O[K]> }
>;

export interface ObjectSchema<T> extends Schema<T> {
  readonly required: Shape;
  readonly optional: Shape;
}

/**
 * An object with exactly these fields: every `required` one, any of the
 * `optional` ones, nothing else (UNKNOWN_FIELD). Output objects are fresh,
 * with only the known fields, so nothing unchecked travels further.
 */
export function object<R extends Shape, O extends Shape = Record<never, never>>(
  required: R,
  optional?: O,
  description?: string,
): ObjectSchema<ObjectOf<R, O>> {
  const opt: Shape = optional ?? {};
  const properties: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(required)) properties[k] = s.jsonSchema;
  for (const [k, s] of Object.entries(opt)) properties[k] = s.jsonSchema;
  const json: Record<string, unknown> = {
    type: 'object',
    properties,
    required: Object.keys(required),
    additionalProperties: false,
  };
  if (description !== undefined) json.description = description;
  return {
    required,
    optional: opt,
    jsonSchema: json,
    parse(value, path = '') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail('WRONG_TYPE', path, `expected an object, got ${typeName(value)}`);
      }
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (!Object.hasOwn(required, key) && !Object.hasOwn(opt, key)) {
          fail('UNKNOWN_FIELD', path ? `${path}.${key}` : key, 'is not a known field');
        }
      }
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(required)) {
        const p = path ? `${path}.${key}` : key;
        if (!Object.hasOwn(record, key)) fail('MISSING_FIELD', p, 'is required');
        out[key] = schema.parse(record[key], p);
      }
      for (const [key, schema] of Object.entries(opt)) {
        if (Object.hasOwn(record, key)) {
          const p = path ? `${path}.${key}` : key;
          out[key] = schema.parse(record[key], p);
        }
      }
      return out as ObjectOf<R, O>;
    },
  };
}

/**
 * A union of object schemas told apart by one string field, e.g. `kind`.
 * Each variant must have that field as a literal.
 */
export function tagged<K extends string, V extends { readonly [tag: string]: ObjectSchema<unknown> }>(
  tag: K,
  variants: V,
): Schema<Infer<V[keyof V]>> {
  return {
    jsonSchema: {
      oneOf: Object.values(variants).map((v) => v.jsonSchema),
      discriminator: { propertyName: tag },
    },
    parse(value, path = '') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail('WRONG_TYPE', path, `expected an object, got ${typeName(value)}`);
      }
      const t = (value as Record<string, unknown>)[tag];
      const p = path ? `${path}.${tag}` : tag;
      if (t === undefined) fail('MISSING_FIELD', p, 'is required');
      if (typeof t !== 'string') fail('WRONG_TYPE', p, `expected a string, got ${typeName(t)}`);
      if (!Object.hasOwn(variants, t))
        fail('INVALID_VALUE', p, `must be one of ${Object.keys(variants).join(', ')}`);
      return (variants[t] as ObjectSchema<unknown>).parse(value, path) as Infer<V[keyof V]>;
    },
  };
}

/** Schema combinator for a value that may be JSON null. */
export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return {
    jsonSchema: { oneOf: [{ type: 'null' }, inner.jsonSchema] },
    parse(value, path = '') {
      return value === null ? null : inner.parse(value, path);
    },
  };
}

/**
 * What a {@link refine} check found wrong when a plain message is not enough:
 * its own code (an EIP-55 checksum is not just an invalid value) and, for a
 * check over a whole object, the field at fault, appended to the path so the
 * refusal names `to`, not the intent.
 */
export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
  readonly field?: string;
}

/**
 * Adds a further check to a schema; `check` returns an error message (refused
 * with `code`), a {@link Problem}, or undefined.
 */
export function refine<T>(
  inner: Schema<T>,
  check: (value: T) => string | Problem | undefined,
  code: ErrorCode = 'INVALID_VALUE',
): Schema<T> {
  return {
    jsonSchema: inner.jsonSchema,
    parse(value, path = '') {
      const v = inner.parse(value, path);
      const problem = check(v);
      if (typeof problem === 'string') fail(code, path, problem);
      if (problem !== undefined) {
        const at = problem.field === undefined ? path : path ? `${path}.${problem.field}` : problem.field;
        fail(problem.code, at, problem.message);
      }
      return v;
    },
  };
}
