/**
 * Request bodies (docs/api.md "Conventions"; THREATS 31).
 *
 * fastify's own JSON parser is removed: like `JSON.parse` it keeps the last of
 * two duplicate keys and accepts numbers no Custos object holds, so two
 * readers of one body could see different objects. Instead:
 * - only `application/json` is read at all; any other content type, or a body
 *   without one, is refused by fastify before a byte is buffered (415
 *   UNSUPPORTED_MEDIA_TYPE);
 * - the body is kept as the raw bytes received, capped by the route's limit
 *   (1 MiB; 4 MiB for governance and signer results: 413 TOO_LARGE, checked against
 *   content-length first and again while reading);
 * - an oversized body is read to its end and thrown away (nothing past the
 *   limit is kept) before the 413 is sent, so the client has finished writing
 *   when the answer comes and the connection then closes cleanly: a server
 *   that answers and closes while the client is still sending resets the
 *   connection, and the client (undici's fetch, notably on Node 24) may lose
 *   the 413 with it. Only MAX_DRAIN_BYTES are read that way (and only within
 *   the request timeout); a body declared or sent past that gets its 413 at
 *   once and the connection is closed under it;
 * - the raw bytes are what the request signature's content-digest covers, and
 *   they are decoded only after the request is authenticated, so no
 *   unauthenticated caller ever reaches the JSON parser or a schema;
 * - decoding is core's strict parser (duplicate keys, non-integers, lone
 *   surrogates, trailing bytes refused; depth at most 32, which it checks
 *   without recursing deeper, so 10,000 nested brackets cost nothing) and then
 *   the route's strict schema. Every refusal carries a stable code (400).
 */
import type { Readable } from 'node:stream';
import { CustosError, decode, type Schema } from '@custos/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Default body limit. */
export const MAX_BODY_BYTES = 1 << 20;
/** Governance entries carry whole policies and address books; signer results carry whole PSBTs. */
export const MAX_LARGE_BODY_BYTES = 4 << 20;
/** Deepest JSON nesting accepted; Custos objects need about ten. */
export const MAX_BODY_DEPTH = 32;
/**
 * How much of an oversized body is read (and discarded) so that its 413
 * reaches the client; past this the connection is closed under the answer.
 */
export const MAX_DRAIN_BYTES = 16 << 20;

/** Replaces fastify's body parsers: JSON bodies are kept as raw bytes, everything else is 415. */
export function installBodyParsing(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', (req, payload, done) => {
    readBody(payload as Readable, req.headers['content-length'], req.routeOptions.bodyLimit, done);
  });
}

function tooLarge(limit: number): CustosError {
  return new CustosError('TOO_LARGE', `the request body is over the limit of ${limit} bytes`);
}

/**
 * Reads a body of at most `limit` bytes. An oversized one is drained up to
 * MAX_DRAIN_BYTES and then refused (see the module header); fastify closes
 * the connection after any parser error.
 */
function readBody(
  payload: Readable,
  contentLength: string | undefined,
  limit: number,
  done: (err: Error | null, body?: Buffer) => void,
): void {
  const declared = contentLength === undefined ? Number.NaN : Number(contentLength);
  if (declared > MAX_DRAIN_BYTES) {
    done(tooLarge(limit));
    return;
  }
  let over = declared > limit;
  let received = 0;
  const chunks: Buffer[] = [];
  const stop = (): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
  };
  function onData(chunk: Buffer): void {
    received += chunk.length;
    if (received > MAX_DRAIN_BYTES) {
      stop();
      done(tooLarge(limit));
      return;
    }
    if (over) return;
    if (received > limit) {
      over = true;
      chunks.length = 0;
      return;
    }
    chunks.push(chunk);
  }
  function onEnd(): void {
    stop();
    if (over) done(tooLarge(limit));
    else if (!Number.isNaN(declared) && received !== declared) {
      done(new CustosError('INVALID_VALUE', 'content-length does not match the body'));
    } else done(null, Buffer.concat(chunks, received));
  }
  function onError(err: Error): void {
    stop();
    done(Object.assign(err, { statusCode: 400 }));
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}

/** The raw body bytes of a request (empty when it had none). */
export function rawBody(req: FastifyRequest): Uint8Array {
  const body: unknown = req.body;
  if (body instanceof Uint8Array) return body;
  return new Uint8Array(0);
}

/**
 * Throws UNSUPPORTED_MEDIA_TYPE unless the request declared a JSON body. A
 * body sent with another type never gets here (fastify refuses it); this
 * catches a body route called with no body and no content type at all.
 */
export function requireJsonBody(req: FastifyRequest): void {
  if (!(req.body instanceof Uint8Array)) {
    throw new CustosError(
      'UNSUPPORTED_MEDIA_TYPE',
      'this call takes a JSON body: send content-type application/json',
    );
  }
}

/** Strictly decodes a request body with the route's schema. Throws the decoding codes. */
export function decodeBody<T>(schema: Schema<T>, raw: Uint8Array, maxBytes: number): T {
  return decode(schema, raw, { maxBytes, maxDepth: MAX_BODY_DEPTH });
}
