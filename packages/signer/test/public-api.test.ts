import { describe, expect, it } from 'vitest';
import * as signer from '../src/index.js';
import * as keystore from '../src/keystore.js';

/**
 * The public API of @custos/signer is these lists, one per entry point
 * (package.json "exports"). `@custos/signer/keystore` is the keystore file
 * format (the CLI reads a signer's public half in `custos init` and writes
 * keystores in `custos dev`) without the daemon or its SQLite.
 */
const EXPORTS = [
  'HttpJobSource',
  'Signer',
  'SignerStore',
  'createKeystore',
  'defaultPath',
  'keystoreFile',
  'keystorePublic',
  'runDaemon',
  'signerCommand',
  'signerConfig',
  'unlockKeystore',
  'writeKeystore',
];

const KEYSTORE = [
  'createKeystore',
  'defaultPath',
  'keystoreFile',
  'keystorePublic',
  'unlockKeystore',
  'writeKeystore',
];

describe('public API', () => {
  it('@custos/signer exports exactly the documented names', () => {
    expect(Object.keys(signer).sort()).toEqual(EXPORTS);
  });

  it('@custos/signer/keystore exports the keystore format only', () => {
    expect(Object.keys(keystore).sort()).toEqual(KEYSTORE);
  });
});
