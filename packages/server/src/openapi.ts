/**
 * Route specifications and the OpenAPI 3.1 document built from them
 * (docs/api.md: served at GET /v1/openapi.json).
 *
 * Each route is declared once, as a RouteSpec: method, path, who may call it,
 * the core schema that decodes its body, its query parameters (each with its
 * own parser) and the codes it can answer. app.ts registers exactly these
 * specs with fastify and decodes with exactly these schemas; this module
 * writes the same schemas' `jsonSchema` into the document. So what is
 * documented is what is enforced, and a test holds the two together (every
 * route fastify knows is in the document, with the validator's own schema).
 */
import {
  CustosError,
  DECODING_ERROR_CODES,
  type ErrorCode,
  type JsonSchema,
  type Schema,
} from '@custos/core';
import { STATUS_OF } from './http-errors.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Who may call a route:
 * - none: public (health, readiness, this document);
 * - member: a member's Ed25519 device (`member:<member>/<device>`);
 * - signer: a signer's identity key (`signer:<id>`);
 * - any: either;
 * - genesis: an admin device listed in the posted genesis itself.
 */
export type AuthKind = 'none' | 'member' | 'signer' | 'any' | 'genesis';

/** One query parameter: its documentation and the parser the route uses. */
export interface QueryParam<T> {
  readonly description: string;
  readonly jsonSchema: JsonSchema;
  /** Parses the raw value; throws INVALID_VALUE. */
  parse(raw: string, name: string): T;
}

export type QueryShape = { readonly [name: string]: QueryParam<unknown> };
export type QueryOf<Q extends QueryShape> = {
  -readonly [K in keyof Q]?: Q[K] extends QueryParam<infer T> ? T : never;
};

export interface RouteSpec<B = unknown, Q extends QueryShape = QueryShape> {
  readonly method: Method;
  /** fastify path syntax (`/v1/intents/:id`). */
  readonly url: string;
  readonly operationId: string;
  readonly summary: string;
  readonly auth: AuthKind;
  /** The schema that decodes a required JSON body. */
  readonly body?: Schema<B>;
  /** Accept (and ignore) any JSON body, e.g. on the refused edit routes. */
  readonly anyBody?: boolean;
  /** Largest body in bytes (default 1 MiB). */
  readonly bodyLimit?: number;
  readonly query?: Q;
  /** Status of a successful answer. */
  readonly success: number;
  readonly successDescription: string;
  /** Codes the route itself can answer; authentication and decoding codes are added from `auth` and `body`. */
  readonly errors: readonly ErrorCode[];
}

// ---------------------------------------------------------------- query parameters

function bad(name: string, message: string): CustosError {
  return new CustosError('INVALID_VALUE', `query parameter ${name}: ${message}`, { parameter: name });
}

/** An integer in [min, max], written in plain decimal. */
export function intParam(min: number, max: number, description: string): QueryParam<number> {
  return {
    description,
    jsonSchema: { type: 'integer', minimum: min, maximum: max },
    parse(raw, name) {
      if (!/^-?(?:0|[1-9][0-9]{0,15})$/.test(raw)) throw bad(name, 'expected an integer');
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < min || n > max)
        throw bad(name, `must be between ${min} and ${max}`);
      return n;
    },
  };
}

/** One of a fixed list of strings. */
export function enumParam<const V extends readonly string[]>(
  values: V,
  description: string,
): QueryParam<V[number]> {
  const set: ReadonlySet<string> = new Set(values);
  return {
    description,
    jsonSchema: { type: 'string', enum: [...values] },
    parse(raw, name) {
      if (!set.has(raw)) throw bad(name, `must be one of ${values.join(', ')}`);
      return raw as V[number];
    },
  };
}

/** A string checked by a core schema (ids, cursors). */
export function stringParam(schema: Schema<string>, description: string): QueryParam<string> {
  return {
    description,
    jsonSchema: schema.jsonSchema,
    parse(raw, name) {
      try {
        return schema.parse(raw, name);
      } catch (err) {
        if (err instanceof CustosError) throw bad(name, err.message);
        throw err;
      }
    },
  };
}

/** Parses a request's query object with a route's parameters; unknown or repeated parameters are refused. */
export function parseQuery<Q extends QueryShape>(shape: Q | undefined, query: unknown): QueryOf<Q> {
  const out: Record<string, unknown> = {};
  const given = (typeof query === 'object' && query !== null ? query : {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(given)) {
    const param = shape?.[name];
    if (param === undefined) throw bad(name, 'is not a parameter of this call');
    if (typeof value !== 'string') throw bad(name, 'is given more than once');
    out[name] = param.parse(value, name);
  }
  return out as QueryOf<Q>;
}

// ---------------------------------------------------------------- the document

const AUTH_ERRORS: readonly ErrorCode[] = [
  'SIGNATURE_REQUIRED',
  'BAD_SIGNATURE',
  'REPLAYED_REQUEST',
  'RATE_LIMITED',
];
const MEMBER_ERRORS: readonly ErrorCode[] = ['NOT_A_MEMBER', 'UNKNOWN_DEVICE', 'DEVICE_REVOKED'];
/** What decoding a body can answer: every decoding code but the canonical-form one, which no route asks for. */
const BODY_ERRORS: readonly ErrorCode[] = DECODING_ERROR_CODES.filter((c) => c !== 'NON_CANONICAL_ENCODING');
const ALWAYS: readonly ErrorCode[] = ['UNAVAILABLE', 'INTERNAL'];

/** Every code a route can answer: its own, plus those its authentication and body bring. */
export function routeErrors(spec: RouteSpec<unknown, QueryShape>): ErrorCode[] {
  const codes = new Set<ErrorCode>(spec.errors);
  if (spec.auth !== 'none') {
    for (const c of AUTH_ERRORS) codes.add(c);
    codes.add('NOT_AUTHORIZED');
    if (spec.auth !== 'signer') for (const c of MEMBER_ERRORS) codes.add(c);
  }
  if (spec.body !== undefined || spec.anyBody === true) for (const c of BODY_ERRORS) codes.add(c);
  if (spec.query !== undefined) codes.add('INVALID_VALUE');
  for (const c of ALWAYS) codes.add(c);
  return [...codes];
}

/** fastify's `/v1/intents/:id` as OpenAPI's `/v1/intents/{id}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

const SECURITY: Readonly<Record<AuthKind, readonly Record<string, string[]>[]>> = {
  none: [],
  member: [{ memberDevice: [] }],
  signer: [{ signerKey: [] }],
  any: [{ memberDevice: [] }, { signerKey: [] }],
  genesis: [{ memberDevice: [] }],
};

const SIGNATURE_HELP =
  'RFC 9421 HTTP Message Signature (Ed25519) over "@method" "@path" "@query" "content-digest", ' +
  'with created (within 300 s), keyid and a nonce used once; Content-Digest (RFC 9530, sha-256) of the body. ' +
  'Send headers content-digest, signature-input and signature. See docs/api.md "Authentication".';

/** The OpenAPI 3.1 document for these routes. */
export function buildOpenApi(
  routes: readonly RouteSpec<unknown, QueryShape>[],
  defaultBodyLimit: number,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    const path = openApiPath(spec.url);
    const item = paths[path] ?? {};
    paths[path] = item;
    const parameters: unknown[] = [];
    for (const m of spec.url.matchAll(/:([A-Za-z0-9_]+)/g)) {
      parameters.push({ name: m[1], in: 'path', required: true, schema: { type: 'string', maxLength: 64 } });
    }
    for (const [name, p] of Object.entries(spec.query ?? {})) {
      parameters.push({
        name,
        in: 'query',
        required: false,
        description: p.description,
        schema: p.jsonSchema,
      });
    }
    const errors = routeErrors(spec);
    const responses: Record<string, unknown> = {
      [String(spec.success)]:
        spec.success === 204
          ? { description: spec.successDescription }
          : {
              description: spec.successDescription,
              content: { 'application/json': { schema: { type: 'object' } } },
            },
    };
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of errors) {
      const status = STATUS_OF[code];
      byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[String(status)] = {
        description: codes.join(', '),
        content: { 'application/json': { schema: errorSchema(codes) } },
      };
    }
    const operation: Record<string, unknown> = {
      operationId: spec.operationId,
      summary: spec.summary,
      security: SECURITY[spec.auth],
      'x-custos-auth': spec.auth,
      'x-custos-errors': errors,
      responses,
    };
    if (parameters.length > 0) operation.parameters = parameters;
    if (spec.body !== undefined) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: spec.body.jsonSchema } },
      };
      operation['x-custos-body-limit'] = spec.bodyLimit ?? defaultBodyLimit;
    } else if (spec.anyBody === true) {
      operation.requestBody = { required: false, content: { 'application/json': { schema: {} } } };
    }
    item[spec.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Custos coordinator',
      version: '1',
      description:
        'The coordinator is trusted for availability only: every state change is signed by a device or signer key, ' +
        'and every signer verifies everything again before it signs. See docs/api.md.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        memberDevice: {
          type: 'apiKey',
          in: 'header',
          name: 'signature',
          description: `${SIGNATURE_HELP} keyid="member:<member id>/<device id>".`,
        },
        signerKey: {
          type: 'apiKey',
          in: 'header',
          name: 'signature',
          description: `${SIGNATURE_HELP} keyid="signer:<signer id>".`,
        },
      },
    },
    paths,
  };
}

function errorSchema(codes: readonly ErrorCode[]): JsonSchema {
  return {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string', enum: [...codes] }, message: { type: 'string' } },
      },
    },
  };
}
