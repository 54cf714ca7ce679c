/**
 * A signed-request client for the tests, built on core's signRequest (RFC
 * 9421, the same code a real client uses), talking either to an app in
 * process (fastify inject: real HTTP semantics, no socket) or to a real
 * socket (fetch). Requests can be prepared and sent later, unchanged, which
 * is how the replay tests capture and replay one (THREATS 3).
 */
import { randomBytes } from 'node:crypto';
import { canonicalize, type Millis, signRequest, toHex } from '@custos/core';
import type { FastifyInstance } from 'fastify';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface PreparedRequest {
  readonly method: Method;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Buffer | null;
}

export interface Res {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, unknown>>;
}

export interface SendOptions {
  /** An object (sent as canonical JSON), or raw bytes or text sent as they are. */
  readonly body?: unknown;
  /** Default application/json when there is a body; null sends none. */
  readonly contentType?: string | null;
  /** `created` in seconds (default: the clock). */
  readonly created?: number;
  readonly nonce?: string;
  /** Extra headers (cookies, bearer tokens...). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Where requests go: an app in process or a base URL. */
export type Target = { readonly app: FastifyInstance } | { readonly baseUrl: string };

export interface SigningKey {
  readonly keyId: string;
  readonly secretKey: Uint8Array;
}

export function payloadOf(body: unknown): Buffer | null {
  if (body === undefined) return null;
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(canonicalize(body), 'utf8');
}

/** Sends a prepared request as it is. */
export async function send(target: Target, req: PreparedRequest): Promise<Res> {
  if ('app' in target) {
    const res = await target.app.inject({
      method: req.method,
      url: req.url,
      headers: req.headers,
      ...(req.payload === null ? {} : { payload: req.payload }),
    });
    return { status: res.statusCode, body: parseBody(res.body), headers: res.headers };
  }
  const res = await fetch(new URL(req.url, target.baseUrl), {
    method: req.method,
    headers: req.headers,
    ...(req.payload === null ? {} : { body: req.payload }),
  });
  const text = await res.text();
  return { status: res.status, body: parseBody(text), headers: Object.fromEntries(res.headers) };
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An unsigned request (a stolen cookie or token is all the attacker has). */
export function unsigned(method: Method, url: string, opts: SendOptions = {}): PreparedRequest {
  const payload = payloadOf(opts.body);
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (payload !== null && opts.contentType !== null)
    headers['content-type'] = opts.contentType ?? 'application/json';
  return { method, url, headers, payload };
}

export class Client {
  constructor(
    readonly target: Target,
    readonly key: SigningKey,
    private readonly clock: () => Millis,
  ) {}

  /** Builds the signed request without sending it. */
  prepare(method: Method, url: string, opts: SendOptions = {}): PreparedRequest {
    const payload = payloadOf(opts.body);
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '?' : url.slice(q);
    const signed = signRequest(
      { method, path, query, body: payload === null ? new Uint8Array(0) : new Uint8Array(payload) },
      {
        keyId: this.key.keyId,
        created: opts.created ?? Math.floor(this.clock() / 1000),
        nonce: opts.nonce ?? toHex(randomBytes(16)),
      },
      this.key.secretKey,
    );
    const headers: Record<string, string> = { ...signed, ...(opts.headers ?? {}) };
    if (payload !== null && opts.contentType !== null)
      headers['content-type'] = opts.contentType ?? 'application/json';
    return { method, url, headers, payload };
  }

  send(method: Method, url: string, opts: SendOptions = {}): Promise<Res> {
    return send(this.target, this.prepare(method, url, opts));
  }

  get(url: string, opts: SendOptions = {}): Promise<Res> {
    return this.send('GET', url, opts);
  }

  post(url: string, body: unknown, opts: SendOptions = {}): Promise<Res> {
    return this.send('POST', url, { ...opts, body });
  }

  /** The same client talking to another target (another coordinator, a real socket). */
  on(target: Target): Client {
    return new Client(target, this.key, this.clock);
  }
}

/** The error code of an answer, or null. */
export function codeOf(res: Res): string | null {
  const e = (res.body as { error?: { code?: unknown } } | null)?.error;
  return typeof e?.code === 'string' ? e.code : null;
}
