/**
 * @custos/evm: Safe 1.4.1 multisig transfers for Custos (issue 9, THREATS
 * 28-29). Pure: the JSON-RPC reads of a Safe's state are apart, in
 * `@custos/evm/state`. The exports below are the public API.
 */
export * from './address.js';
export * from './amount.js';
export * from './codes.js';
export * from './erc20.js';
export * from './exec.js';
export * from './nodes.js';
export * from './safe-state.js';
export * from './safe-tx.js';
export * from './signatures.js';
export * from './verify.js';
