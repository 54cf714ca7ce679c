/**
 * The shape of a route, shared by app.ts (which registers and enforces the
 * routes) and routes.ts (which declares them): a spec, its typed handler and
 * the context every handler gets. Neither of those two imports the other;
 * both import this.
 */
import type { Digest, Millis } from '@custos/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthContext, Authenticator } from './auth.js';
import type { CoordinatorLimits } from './config.js';
import type { AuditLog, GovernanceView, SigningPipeline } from './contracts.js';
import type { Engine, RequestInfo } from './coordinator.js';
import type { Store } from './db/repository.js';
import type { QueryOf, QueryShape, RouteSpec } from './openapi.js';

/** One call of a route, after authentication and decoding. */
export interface Call<B, Q extends QueryShape> {
  readonly req: FastifyRequest;
  readonly reply: FastifyReply;
  /** Null on public routes and on the genesis route (which authenticates itself). */
  readonly auth: AuthContext | null;
  readonly body: B;
  readonly raw: Uint8Array;
  readonly query: QueryOf<Q>;
  readonly params: Readonly<Record<string, string>>;
  readonly info: RequestInfo;
}

export interface Answer {
  /** Default: the route's success status. */
  readonly status?: number;
  readonly body?: unknown;
}

export interface RouteDef {
  readonly spec: RouteSpec<unknown, QueryShape>;
  readonly handler: (c: Call<unknown, QueryShape>) => Promise<Answer>;
}

/** Declares a route: a spec and its typed handler (types are erased for the table). */
export function route<B, Q extends QueryShape = Record<never, never>>(
  spec: RouteSpec<B, Q>,
  handler: (c: Call<B, Q>) => Promise<Answer>,
): RouteDef {
  return {
    spec: spec as unknown as RouteSpec<unknown, QueryShape>,
    handler: handler as unknown as RouteDef['handler'],
  };
}

/** Everything routes.ts needs to answer. */
export interface RouteContext {
  readonly store: Store;
  readonly pipeline: SigningPipeline;
  readonly governance: GovernanceView;
  readonly engine: Engine;
  readonly authenticator: Authenticator;
  /** The audit log (refusals of authenticated requests are written here, see `register`). */
  readonly audit: AuditLog;
  readonly clock: () => Millis;
  readonly limits: CoordinatorLimits;
  readonly org: Digest | undefined;
  /** Aborted when the app starts closing: long-polls end at once. */
  readonly closing: AbortSignal;
  /** The OpenAPI document (built once the routes are known). */
  openapi(): Record<string, unknown>;
}
