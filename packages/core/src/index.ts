/**
 * @custos/core: the pure domain of Custos. No I/O and no clock: time comes in
 * as an argument, storage stays in the shells. The exports below are the
 * public API; test/public-api.test.ts pins the list.
 */
export * from './audit.js';
export * from './bump.js';
export * from './bytes.js';
export * from './decode.js';
export * from './device-signer.js';
export * from './errors.js';
export * from './evm.js';
export * from './fees.js';
export * from './governance.js';
export * from './governance-effects.js';
export * from './hash.js';
export * from './http-signature.js';
export * from './internal-transfer.js';
export * from './jcs.js';
export * from './jobs.js';
export * from './json.js';
export * from './keys.js';
export * from './ledger.js';
export * from './lookalike.js';
export * from './objects.js';
export * from './policy.js';
export * as primitives from './primitives.js';
export { ZERO_DIGEST } from './primitives.js';
export * from './qr-chunks.js';
export type { Infer, JsonSchema, Schema } from './schema.js';
export * as schema from './schema.js';
export * from './sealed.js';
export * from './state.js';
export * from './types.js';
export * from './webauthn.js';
