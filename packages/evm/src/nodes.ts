/**
 * The `evm` section of a signer's and a watcher's config: EVM chain id
 * (decimal, as in `eip155:<id>`) to that process's own node. The map is
 * read by one schema, so a signer and a watcher given the same chains read
 * them alike; each process passes the shape of its own node entry.
 */
import { CustosError, evmChainId, type Schema } from '@custos/core';

/** Most chains one config names. */
const MAX_CHAINS = 16;

const CHAIN_KEY = /^[1-9][0-9]{0,15}$/;

/**
 * The schema of a config's `evm`: an object of chain id (a canonical decimal
 * from 1 to 2^53 - 1) to `node`, at most 16 chains. WRONG_TYPE for anything
 * but an object, INVALID_VALUE naming the key for a bad chain id.
 *
 * @example
 * const nodes = evmNodes(schema.object({ rpcUrl: schema.string({ min: 1 }) }));
 * nodes.parse({ '1': { rpcUrl: 'http://127.0.0.1:8545' } });
 */
export function evmNodes<T>(node: Schema<T>): Schema<Record<string, T>> {
  return {
    jsonSchema: {
      type: 'object',
      propertyNames: { pattern: CHAIN_KEY.source },
      additionalProperties: node.jsonSchema,
      maxProperties: MAX_CHAINS,
    },
    parse(value, at = 'evm') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new CustosError('WRONG_TYPE', `${at}: expected an object of chain id to { rpcUrl }`);
      }
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length > MAX_CHAINS)
        throw new CustosError('INVALID_VALUE', `${at}: at most ${MAX_CHAINS} chains`);
      const out: Record<string, T> = {};
      for (const [k, v] of entries) {
        if (!CHAIN_KEY.test(k) || evmChainId(`eip155:${k}`) === undefined) {
          throw new CustosError('INVALID_VALUE', `${at}.${k}: a chain id is a decimal from 1 to 2^53 - 1`);
        }
        out[k] = node.parse(v, `${at}.${k}`);
      }
      return out;
    },
  };
}
