/**
 * A config's `evm` (evmNodes): chain id to a process's own node, read by one
 * schema in the signer's config and the watcher's. A bad chain id, too many
 * chains or a bad node is a stable error code naming where, not a crash.
 */
import { CustosError, decode, schema } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { evmNodes } from '../src/nodes.js';

const nodes = evmNodes(schema.object({ rpcUrl: schema.string({ min: 1, max: 2048 }) }));

function failure(value: unknown): { code: string; message: string } | undefined {
  try {
    decode(nodes, JSON.stringify(value));
    return undefined;
  } catch (err) {
    return err instanceof CustosError ? { code: err.code, message: err.message } : { code: '?', message: '' };
  }
}

describe('evmNodes', () => {
  it('reads chain id to node, each node by its own schema', () => {
    const v = { '1': { rpcUrl: 'http://127.0.0.1:8545' }, '9007199254740991': { rpcUrl: 'http://b' } };
    expect(decode(nodes, JSON.stringify(v))).toEqual(v);
    expect(nodes.jsonSchema).toMatchObject({ type: 'object', maxProperties: 16 });
  });

  it('refuses a chain id that is not a canonical decimal from 1 to 2^53 - 1, naming the key', () => {
    for (const key of ['0', '01', '-1', 'mainnet', '9007199254740992', '1.5', '']) {
      const f = failure({ [key]: { rpcUrl: 'http://a' } });
      expect(f?.code, key).toBe('INVALID_VALUE');
      expect(f?.message, key).toContain(`evm.${key}: a chain id`);
    }
  });

  it('refuses more than 16 chains, a value that is not an object, and a bad node with its path', () => {
    const many = Object.fromEntries(
      Array.from({ length: 17 }, (_, i) => [String(i + 1), { rpcUrl: 'http://a' }]),
    );
    expect(failure(many)?.code).toBe('INVALID_VALUE');
    expect(failure(Object.fromEntries(Object.entries(many).slice(0, 16)))).toBeUndefined();
    expect(failure([])?.code).toBe('WRONG_TYPE');
    expect(failure(null)?.code).toBe('WRONG_TYPE');
    expect(failure('http://a')?.code).toBe('WRONG_TYPE');
    expect(failure({ '5': {} })).toMatchObject({ code: 'MISSING_FIELD' });
    expect(failure({ '5': {} })?.message).toContain('evm.5');
  });
});
