/**
 * @custos/server: the coordinator. Trusted for availability only: it stores,
 * relays and audits; every signer checks everything again before it signs.
 * The exports below are what `custos serve`, `custos init`, `custos dev` and
 * the tests build on.
 */
export { type Coordinator, type CreateCoordinatorOptions, createCoordinator } from './app.js';
export {
  auditText,
  DEFAULT_REFUSAL_LIMITS,
  type Refusal as AuditedRefusal,
  RefusalAuditor,
  type RefusalLimits,
  StoreAuditLog,
} from './audit-log.js';
export {
  type AuthContext,
  Authenticator,
  bodyDigest,
  type KeyResolver,
  type Principal,
  requestTarget,
  SIGNATURE_WINDOW_S,
  stateKeys,
} from './auth.js';
export { MAX_BODY_BYTES, MAX_BODY_DEPTH, MAX_LARGE_BODY_BYTES } from './body.js';
export {
  type ChainConfig,
  type CoordinatorLimits,
  DEFAULT_LIMITS,
  readServerConfig,
  resolveLimits,
  type ServerConfig,
  type WebhookTarget,
} from './config.js';
export { type ConsoleAssets, consoleCsp, loadConsole } from './console.js';
export type {
  AuditLog,
  CoordinatorParts,
  GovernanceView,
  NotificationEvent,
  Notifier,
  SignerFeed,
  SigningPipeline,
  WalletSummary,
} from './contracts.js';
export {
  type DecisionView,
  decisionView,
  Engine,
  type IntentSummary,
  type IntentView,
  type ProposalOutcome,
  type ProposalView,
  proposalWarnings,
  type SweepResult,
} from './coordinator.js';
export * from './db/index.js';
export {
  initOrganization,
  StoreGovernanceView,
} from './governance-view.js';
export { errorBody, failureOf, STATUS_OF, statusOf } from './http-errors.js';
export { type AuthKind, buildOpenApi, type RouteSpec } from './openapi.js';
export { type BucketRate, TokenBuckets } from './rate-limit.js';
export { type Answer, type Call, type RouteContext, type RouteDef, route } from './route.js';
export {
  type NotifierFactory,
  type NotifierService,
  type PipelineFactory,
  type PipelineFactoryInput,
  type RunningServer,
  type StartServerOptions,
  startServer,
} from './server.js';
