/**
 * The console's HTTP client. Reads are signed (RFC 9421, core's profile) by
 * the session key: Ed25519 in WebCrypto, made non-extractable, so script in
 * the page can use it for minutes but never copy it out. Changes are sent as
 * the passkey-signed object itself (`Custos-Auth: signed-object`), never
 * under the session key, which the coordinator refuses for anything but GET.
 */
import { fromHex, signRequestWith, toHex, utf8 } from '@custos/core';

export interface SessionKey {
  /** `session:<member>/<device>`. */
  readonly keyId: string;
  readonly privateKey: CryptoKey;
  /** base64url of the certificate (the Custos-Session header). */
  readonly certificate: string;
  readonly expiresAt: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function answer(res: Response): Promise<unknown> {
  const text = await res.text();
  const body = text === '' ? null : (JSON.parse(text) as unknown);
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(
      res.status,
      e?.code ?? 'HTTP_ERROR',
      e?.message ?? `the coordinator answered ${res.status}`,
    );
  }
  return body;
}

export class Api {
  constructor(readonly session: SessionKey) {}

  /** A signed GET of `pathAndQuery` (e.g. /v1/intents?status=pending). */
  async get(pathAndQuery: string): Promise<unknown> {
    const q = pathAndQuery.indexOf('?');
    const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
    const query = q < 0 ? '?' : pathAndQuery.slice(q);
    const nonce = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const headers = await signRequestWith(
      { method: 'GET', path, query, body: new Uint8Array(0) },
      { keyId: this.session.keyId, created: Math.floor(Date.now() / 1000), nonce },
      async (base) =>
        new Uint8Array(await crypto.subtle.sign('Ed25519', this.session.privateKey, new Uint8Array(base))),
    );
    const res = await fetch(pathAndQuery, {
      headers: { ...headers, 'custos-session': this.session.certificate },
      credentials: 'omit',
      cache: 'no-store',
    });
    return answer(res);
  }
}

/** Sends a passkey-signed object (an intent, an approval) as its own authorization. */
export async function postSignedObject(path: string, body: unknown): Promise<unknown> {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'custos-auth': 'signed-object' },
    body: utf8(JSON.stringify(body)) as BodyInit,
    credentials: 'omit',
    cache: 'no-store',
  });
  return answer(res);
}

export { fromHex };
