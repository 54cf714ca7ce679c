/**
 * Request authentication (docs/api.md "Authentication"; THREATS 1-5).
 *
 * Every call that is not public is signed with RFC 9421 HTTP Message
 * Signatures by a device or signer key that governance registered; a bearer
 * token or a cookie alone authenticates nothing (THREATS 1, 2). The checks,
 * in order, each with its stable code:
 *  1. Signature-Input and Signature in this server's profile (core's
 *     parseSignatureHeaders): SIGNATURE_REQUIRED when absent, BAD_SIGNATURE
 *     when malformed, when the components or parameters are not exactly the
 *     profile's (any label and any order are fine), or when the request
 *     carries more than one signature (label);
 *  2. `created` within ±300 s of the server's clock: BAD_SIGNATURE (the
 *     message says the clock is off);
 *  3. the key id names a key in the verified governance state:
 *     `member:<member>/<device>` (NOT_A_MEMBER for a removed member, THREATS
 *     5; UNKNOWN_DEVICE; a passkey cannot sign requests) or `signer:<id>`
 *     (NOT_AUTHORIZED for a signer governance does not list);
 *  4. the signature over method, path and query exactly as received
 *     (`req.raw.url`, not a normalized form) and the Content-Digest of the
 *     raw body bytes, in the order the client's Signature-Input lists them,
 *     with its inner list as received for "@signature-params": BAD_SIGNATURE;
 *  5. a revoked device is named only after its signature verified, so the
 *     answer DEVICE_REVOKED (THREATS 4) tells nothing to someone without the key;
 *  6. the key's rate limit (RATE_LIMITED, not consumed by requests that fail
 *     the steps above, so nobody can spend another key's budget; audited
 *     within the refusal budget like the other steps);
 *  7. the (key id, nonce) pair is used once, in the shared store, so a replay
 *     to any coordinator fails (REPLAYED_REQUEST, THREATS 3). The nonce is
 *     kept until its `created` leaves the window, after which step 2 refuses
 *     the replay anyway.
 * Every refusal in steps 1-7 is audited as `request.refused` through
 * the RefusalAuditor, whose budget bounds what a flood can write. Refusals
 * after step 7 (decoding, the rules) come from a caller that proved a key and
 * spent its rate budget; app.ts audits each of them as `request.refused` too.
 */
import {
  activeRoles,
  CustosError,
  type DeviceSignature,
  type Digest,
  type ErrorCode,
  type GovernanceState,
  hasRole,
  type Millis,
  parseSignatureHeaders,
  type Refusal,
  refuse,
  sha256,
  signerActive,
  toHex,
  verifyDeviceSignature,
  verifyRequestSignature,
  WATCHER_ROLE,
} from '@custos/core';
import type { FastifyRequest } from 'fastify';
import type { RefusalAuditor } from './audit-log.js';
import type { GovernanceView } from './contracts.js';
import type { Store } from './db/repository.js';
import type { BucketRate, TokenBuckets } from './rate-limit.js';
import { withSessions } from './session.js';

/** How far `created` may be from the server's clock, in seconds (docs/api.md). */
export const SIGNATURE_WINDOW_S = 300;

export type Principal =
  | {
      readonly kind: 'member';
      readonly keyId: string;
      readonly member: string;
      readonly device: string;
      /** A console session key (session.ts): it reads, and app.ts refuses it on every other method. */
      readonly readOnly?: true;
    }
  | { readonly kind: 'signer'; readonly keyId: string; readonly signer: string };

export interface AuthContext {
  readonly principal: Principal;
  /** The verified governance state the request was authenticated against. */
  readonly state: GovernanceState;
}

/** A key id resolved to the key that must have signed, or a refusal. */
export type ResolvedKey =
  | {
      readonly ok: true;
      readonly principal: Principal;
      readonly publicKey: string;
      /** A refusal to give once the signature verified (a revoked device). */
      readonly afterVerify?: Refusal;
      /**
       * Whose rate applies: a signer's, or a member's. A member holding the
       * watcher role gets a signer's: like a signer, its reads grow with the
       * organization's withdrawals (issue 12), and a watcher that is refused
       * reads is one that cannot tell a withdrawal from a theft.
       */
      readonly rate?: 'signer';
      /** The member's roles in force (a role may carry its own rate, CoordinatorLimits.roleRates). */
      readonly roles?: readonly string[];
    }
  | Refusal;

export type KeyResolver = (keyId: string) => ResolvedKey;

const MEMBER_KEY = /^member:([^/]+)\/([^/]+)$/;
const SIGNER_KEY = /^signer:([^/]+)$/;

/** Resolves key ids against a verified governance state (see the module header, step 3). */
export function stateKeys(state: GovernanceState, now: Millis = Date.now()): KeyResolver {
  return (keyId) => {
    const m = MEMBER_KEY.exec(keyId);
    if (m !== null) {
      const memberId = m[1] as string;
      const deviceId = m[2] as string;
      const member = state.members.get(memberId);
      if (member === undefined) return refuse('NOT_A_MEMBER', `${memberId} is not a member`);
      const d = member.devices.get(deviceId);
      if (d === undefined) return refuse('UNKNOWN_DEVICE', `${memberId} has no device ${deviceId}`);
      if (d.device.kind !== 'ed25519') {
        return refuse(
          'BAD_SIGNATURE',
          'a passkey cannot sign HTTP requests; use an Ed25519 device key (the approval itself carries the passkey assertion)',
        );
      }
      const principal: Principal = { kind: 'member', keyId, member: memberId, device: deviceId };
      if (d.revoked) {
        return {
          ok: true,
          principal,
          publicKey: d.device.publicKey,
          afterVerify: refuse('DEVICE_REVOKED', `device ${deviceId} of ${memberId} is revoked`),
        };
      }
      // Issue 8, item 1: a device added by governance authorizes nothing until its delay has passed.
      if (d.activeFrom > now) {
        return {
          ok: true,
          principal,
          publicKey: d.device.publicKey,
          afterVerify: refuse(
            'DEVICE_NOT_ACTIVE',
            `device ${deviceId} of ${memberId} is waiting out the governance delay until ${new Date(d.activeFrom).toISOString()}`,
          ),
        };
      }
      return {
        ok: true,
        principal,
        publicKey: d.device.publicKey,
        ...(hasRole(state, memberId, WATCHER_ROLE, now) ? { rate: 'signer' as const } : {}),
        roles: activeRoles(state, memberId, now),
      };
    }
    const s = SIGNER_KEY.exec(keyId);
    if (s !== null) {
      const signerId = s[1] as string;
      const signer = state.signers.get(signerId);
      if (signer === undefined) return refuse('NOT_AUTHORIZED', `governance lists no signer ${signerId}`);
      if (!signerActive(state, signerId, now)) {
        return refuse(
          'DEVICE_NOT_ACTIVE',
          `signer ${signerId} is waiting out the governance delay until ${new Date(state.signersActiveFrom.get(signerId) ?? 0).toISOString()}`,
        );
      }
      return {
        ok: true,
        principal: { kind: 'signer', keyId, signer: signerId },
        publicKey: signer.publicKey,
      };
    }
    return refuse('BAD_SIGNATURE', 'the key id must be member:<member>/<device> or signer:<id>');
  };
}

/** The request target as received: path, and query with its '?' ('?' when there is none; RFC 9421 2.2.7). */
export function requestTarget(rawUrl: string | undefined): { path: string; query: string } {
  const url = rawUrl ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '?' } : { path: url.slice(0, q), query: url.slice(q) };
}

/** sha256 of a body, hex: the digest of a refused request in the audit log. */
export function bodyDigest(raw: Uint8Array): Digest {
  return toHex(sha256(raw)) as Digest;
}

/** A member key's rate: the member rate, or the fastest rate (per second, then burst) of a role it holds, if faster. */
function memberRate(rates: AuthenticatorOptions['rates'], roles: readonly string[]): BucketRate {
  let best = rates.member;
  for (const role of roles) {
    const r = rates.roles !== undefined && Object.hasOwn(rates.roles, role) ? rates.roles[role] : undefined;
    if (
      r !== undefined &&
      (r.perSecond > best.perSecond || (r.perSecond === best.perSecond && r.burst > best.burst))
    )
      best = r;
  }
  return best;
}

export interface AuthenticatorOptions {
  readonly governance: GovernanceView;
  readonly store: Store;
  readonly clock: () => Millis;
  readonly buckets: TokenBuckets;
  readonly rates: {
    readonly member: BucketRate;
    readonly signer: BucketRate;
    /** By role: a member holding a listed role gets the fastest of them, if faster than `member`. */
    readonly roles?: Readonly<Record<string, BucketRate>>;
  };
  readonly refusals: RefusalAuditor;
  readonly windowS?: number;
  /**
   * Called when a passkey-signed object's assertion does not verify over the
   * object sent (authenticateObject): what a console or relay rewriting what
   * a member signed looks like (THREATS 6). Within the refusal budget only,
   * so an anonymous flood cannot turn it into a flood of alerts.
   */
  readonly onForgedObject?: (t: {
    keyId: string;
    method: string;
    path: string;
    message: string;
  }) => Promise<void>;
}

export class Authenticator {
  readonly #o: AuthenticatorOptions;
  readonly #windowS: number;

  constructor(opts: AuthenticatorOptions) {
    this.#o = opts;
    this.#windowS = opts.windowS ?? SIGNATURE_WINDOW_S;
  }

  /**
   * Authenticates a request whose raw body is `raw` against the current
   * governance state. Throws CustosError with the codes of the module header;
   * UNAVAILABLE when there is no verified governance.
   */
  async authenticate(req: FastifyRequest, raw: Uint8Array): Promise<AuthContext> {
    let state: GovernanceState | undefined;
    const principal = await this.#run(req, raw, async () => {
      state = await this.#o.governance.current();
      const now = this.#o.clock();
      return withSessions(stateKeys(state, now), state, now, single(req.headers['custos-session']));
    });
    if (state === undefined) throw new CustosError('INTERNAL', 'authenticated without a state');
    return { principal, state };
  }

  /** Authenticates against keys resolved by `resolver` (the genesis route: keys the posted genesis lists). */
  authenticateWith(req: FastifyRequest, raw: Uint8Array, resolver: KeyResolver): Promise<Principal> {
    return this.#run(req, raw, async () => resolver);
  }

  async #run(req: FastifyRequest, raw: Uint8Array, keys: () => Promise<KeyResolver>): Promise<Principal> {
    const { path, query } = requestTarget(req.raw.url);
    const parsed = parseSignatureHeaders({
      'signature-input': single(req.headers['signature-input']),
      signature: single(req.headers.signature),
    });
    if (!parsed.ok) return this.#refuse('anonymous', parsed, req.method, path, raw);
    const sig = parsed.value;
    const keyId = sig.keyId;

    const nowMs = this.#o.clock();
    const skew = Math.abs(nowMs / 1000 - sig.created);
    if (skew > this.#windowS) {
      return this.#refuse(
        keyId,
        refuse(
          'BAD_SIGNATURE',
          `the signature was created ${Math.round(skew)} s away from the server's clock (at most ${this.#windowS} s): check the device clock`,
        ),
        req.method,
        path,
        raw,
      );
    }

    const resolver = await keys();
    const key = resolver(keyId);
    if (!key.ok) return this.#refuse(keyId, key, req.method, path, raw);

    const verified = verifyRequestSignature(
      { method: req.method, path, query, body: raw },
      single(req.headers['content-digest']),
      sig,
      key.publicKey,
    );
    if (!verified.ok) return this.#refuse(keyId, verified, req.method, path, raw);
    if (key.afterVerify !== undefined) return this.#refuse(keyId, key.afterVerify, req.method, path, raw);

    const rate =
      key.principal.kind === 'signer' || key.rate === 'signer'
        ? this.#o.rates.signer
        : memberRate(this.#o.rates, key.roles ?? []);
    const taken = this.#o.buckets.take(keyId, rate);
    if (!taken.ok) {
      // Audited within the refusal budget: a key past its rate must not write one entry per request.
      await this.#o.refusals.refused({
        actor: keyId,
        subject: `RATE_LIMITED ${req.method} ${path}`,
        digest: bodyDigest(raw),
      });
      const err = new CustosError(
        'RATE_LIMITED',
        `too many requests for ${keyId}; retry in ${Math.ceil(taken.retryAfterMs / 1000)} s`,
        { retryAfterMs: taken.retryAfterMs },
      );
      AUDITED.add(err);
      throw err;
    }

    const expiresAt = (sig.created + this.#windowS) * 1000 + 1000;
    const fresh = await this.#o.store.nonces.use(keyId, sig.nonce, expiresAt, nowMs);
    if (!fresh) {
      return this.#refuse(
        keyId,
        refuse('REPLAYED_REQUEST', 'this request (key id and nonce) was already received'),
        req.method,
        path,
        raw,
      );
    }
    return key.principal;
  }

  /**
   * A change sent by a passkey (docs/api.md "Authentication", the console):
   * the request carries no HTTP signature (`Custos-Auth: signed-object`),
   * and what authenticates it is the passkey's assertion over the object's
   * own digest, checked here against the passkey governance registered
   * before anything else is done. The caller is then that device, with its
   * rate limit; the engine checks everything it checks for any caller. A
   * replay is the same object again, which the engine answers as it did
   * (DUPLICATE_INTENT, or the same approval's view). Ed25519 devices sign
   * their requests as before.
   */
  async authenticateObject(req: FastifyRequest, raw: Uint8Array, claim: ObjectClaim): Promise<AuthContext> {
    const { path } = requestTarget(req.raw.url);
    const keyId = `member:${claim.member}/${claim.device}`;
    const state = await this.#o.governance.current();
    const now = this.#o.clock();
    const member = state.members.get(claim.member);
    if (member === undefined) {
      return this.#refuse(
        keyId,
        refuse('NOT_A_MEMBER', `${claim.member} is not a member`),
        req.method,
        path,
        raw,
      );
    }
    const d = member.devices.get(claim.device);
    if (d === undefined) {
      const r = refuse('UNKNOWN_DEVICE', `${claim.member} has no device ${claim.device}`);
      return this.#refuse(keyId, r, req.method, path, raw);
    }
    if (d.device.kind !== 'webauthn' || claim.signature.kind !== 'webauthn') {
      const r = refuse('BAD_SIGNATURE', 'only a passkey-signed object is sent without an HTTP signature');
      return this.#refuse(keyId, r, req.method, path, raw);
    }
    const verified = verifyDeviceSignature(d.device, claim.digest, claim.signature);
    if (!verified.ok) {
      const message = `the passkey assertion over the object does not verify: ${verified.message}`;
      const written = await this.#o.refusals.refused({
        actor: keyId,
        subject: `BAD_SIGNATURE ${req.method} ${path}`,
        digest: bodyDigest(raw),
      });
      if (written && this.#o.onForgedObject !== undefined) {
        await this.#o.onForgedObject({ keyId, method: req.method, path, message }).catch(() => undefined);
      }
      const err = new CustosError('BAD_SIGNATURE', message);
      AUDITED.add(err);
      throw err;
    }
    if (d.revoked) {
      const r = refuse('DEVICE_REVOKED', `device ${claim.device} of ${claim.member} is revoked`);
      return this.#refuse(keyId, r, req.method, path, raw);
    }
    if (d.activeFrom > now) {
      const r = refuse(
        'DEVICE_NOT_ACTIVE',
        `device ${claim.device} of ${claim.member} is waiting out the governance delay`,
      );
      return this.#refuse(keyId, r, req.method, path, raw);
    }
    const taken = this.#o.buckets.take(keyId, this.#o.rates.member);
    if (!taken.ok) {
      const err = new CustosError('RATE_LIMITED', `too many requests for ${keyId}`, {
        retryAfterMs: taken.retryAfterMs,
      });
      await this.#o.refusals.refused({
        actor: keyId,
        subject: `RATE_LIMITED ${req.method} ${path}`,
        digest: bodyDigest(raw),
      });
      AUDITED.add(err);
      throw err;
    }
    return { principal: { kind: 'member', keyId, member: claim.member, device: claim.device }, state };
  }

  /** Audits a refused request (within the refusal budget) and throws its code. */
  async refuseRequest(
    actor: string,
    code: ErrorCode,
    message: string,
    where: { method: string; path: string; raw: Uint8Array },
  ): Promise<never> {
    return this.#refuse(actor, refuse(code, message), where.method, where.path, where.raw);
  }

  async #refuse(actor: string, r: Refusal, method: string, path: string, raw: Uint8Array): Promise<never> {
    await this.#o.refusals.refused({
      actor,
      subject: `${r.code} ${method} ${path}`,
      digest: bodyDigest(raw),
    });
    const err = new CustosError(r.code, r.message);
    AUDITED.add(err);
    throw err;
  }
}

/** Who signed a passkey-signed object, its digest and the assertion (authenticateObject). */
export interface ObjectClaim {
  readonly member: string;
  readonly device: string;
  readonly digest: Digest;
  readonly signature: DeviceSignature;
}

/** Refusals already written as `request.refused` (so app.ts does not write them twice). */
const AUDITED = new WeakSet<object>();

/** Whether `err` is a refusal this module already audited as `request.refused`. */
export function refusalAudited(err: unknown): boolean {
  return typeof err === 'object' && err !== null && AUDITED.has(err);
}

/**
 * A header's value; a repeated header becomes one value joined with ", " (RFC
 * 9110 section 5.3), which the profile refuses as more than one signature.
 */
function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
