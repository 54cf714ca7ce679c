/**
 * The watcher config's `evm` (issue 12): chain id to the watcher's own node,
 * as a signer names its own; `bitcoin` optional once EVM is there; a bad
 * chain id or URL is a stable error code, not a crash.
 */
import { CustosError, decode } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { watcherConfig } from '../src/config.js';

const base = {
  coordinatorUrl: 'http://127.0.0.1:8080',
  genesis: `${'ab'.repeat(32)}`,
  keyFile: 'watcher.key',
  record: 'watcher-record.json',
};

function codeOf(value: unknown): string | undefined {
  try {
    decode(watcherConfig, JSON.stringify(value));
    return undefined;
  } catch (err) {
    return err instanceof CustosError ? err.code : 'NOT_A_CUSTOS_ERROR';
  }
}

describe('the watcher config, evm', () => {
  it('takes EVM chains without Bitcoin, each with its own node and an optional start block', () => {
    const c = decode(
      watcherConfig,
      JSON.stringify({
        ...base,
        evm: {
          '1': { rpcUrl: 'http://127.0.0.1:8545' },
          '31337': { rpcUrl: 'http://127.0.0.1:8546', startBlock: 12 },
        },
      }),
    );
    expect(c.bitcoin).toBeUndefined();
    expect(c.evm).toEqual({
      '1': { rpcUrl: 'http://127.0.0.1:8545' },
      '31337': { rpcUrl: 'http://127.0.0.1:8546', startBlock: 12 },
    });
  });

  it('refuses a chain id that is not a decimal from 1, a node without a URL, a URL with credentials, a negative start block', () => {
    expect(codeOf({ ...base, evm: { '0': { rpcUrl: 'http://127.0.0.1:8545' } } })).toBe('INVALID_VALUE');
    expect(codeOf({ ...base, evm: { mainnet: { rpcUrl: 'http://127.0.0.1:8545' } } })).toBe('INVALID_VALUE');
    expect(codeOf({ ...base, evm: { '1': {} } })).toBe('MISSING_FIELD');
    expect(codeOf({ ...base, evm: { '1': { rpcUrl: 'http://user:pw@127.0.0.1:8545' } } })).toBe(
      'INVALID_VALUE',
    );
    expect(codeOf({ ...base, evm: { '1': { rpcUrl: 'http://127.0.0.1:8545', startBlock: -1 } } })).toBe(
      'INVALID_VALUE',
    );
    expect(codeOf({ ...base, evm: [] })).toBe('WRONG_TYPE');
  });
});
