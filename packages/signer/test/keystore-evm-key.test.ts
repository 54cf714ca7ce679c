/**
 * The keystore's EVM key (issue 9): a new keystore holds a sealed secp256k1
 * Safe owner key and shows its address in the public half (what admins put
 * into governance as the signer's evmAddress); a keystore made before EVM
 * support still opens, without one (its signer refuses EVM jobs); a public
 * half whose address was edited does not open.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descriptorKeyOf, signerKeyFromSeed } from '@custos/bitcoin/sign';
import { CustosError, canonicalize, generateEd25519, sealWithPassword, toHex } from '@custos/core';
import { evmAddressOf } from '@custos/evm';
import { signerCli } from '@custos/test-support/signer-process';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeystore, defaultPath, unlockKeystore, writeKeystore } from '../src/keystore.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-keystore-evm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the keystore EVM key', () => {
  it('is sealed with the others, its EIP-55 address in the public half, and opens to the same key', async () => {
    const { file, unlocked } = await createKeystore({
      id: 'signer-1',
      network: 'regtest',
      password: 'pw',
      logN: 10,
    });
    expect(file.public.evmAddress).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(evmAddressOf(unlocked.evmSecret!)).toBe(file.public.evmAddress);
    expect(JSON.stringify(file.box)).not.toContain(toHex(unlocked.evmSecret!));
    const path = join(dir, 'new.key');
    writeKeystore(path, file);
    const opened = await unlockKeystore(path, 'pw');
    expect(toHex(opened.evmSecret!)).toBe(toHex(unlocked.evmSecret!));
  });

  it('is shown by `custos signer init` (the process), for admins to put into governance as evmAddress', async () => {
    const pw = join(dir, 'pw.txt');
    writeFileSync(pw, 'pw\n');
    const path = join(dir, 'cli.key');
    const out = await signerCli([
      'init',
      '--id',
      'signer-cli',
      '--keystore',
      path,
      '--password-file',
      pw,
      '--scrypt-log-n',
      '10',
    ]);
    expect(out.code).toBe(0);
    const shown = JSON.parse(out.stdout) as { evmAddress: string };
    const opened = await unlockKeystore(path, 'pw');
    expect(shown.evmAddress).toBe(evmAddressOf(opened.evmSecret!));
  });

  it('opens a keystore made before EVM support, with no EVM key', async () => {
    // The format before issue 9: seed and identity sealed, no evmAddress in the public half.
    const seed = new Uint8Array(64).fill(7);
    const identity = generateEd25519();
    const descriptorKey = descriptorKeyOf(signerKeyFromSeed(seed, defaultPath('regtest')), 'regtest');
    const pub = {
      id: 'signer-old',
      network: 'regtest',
      identityKey: identity.publicKey,
      fingerprint: descriptorKey.fingerprint,
      path: descriptorKey.path,
      xpub: descriptorKey.xpub,
    };
    const box = await sealWithPassword(
      { seed: toHex(seed), identity: toHex(identity.secretKey) },
      'pw',
      pub,
      {
        logN: 10,
      },
    );
    const path = join(dir, 'old.key');
    writeFileSync(path, `${canonicalize({ v: 1, kind: 'custos-signer-keystore', public: pub, box })}\n`);
    const opened = await unlockKeystore(path, 'pw');
    expect(opened.evmSecret).toBeNull();
    expect(opened.public.evmAddress).toBeUndefined();
    expect(opened.public.xpub).toBe(descriptorKey.xpub);
  });

  it('refuses a public half whose EVM address was edited (the box is bound to it)', async () => {
    const { file } = await createKeystore({ id: 'signer-1', network: 'regtest', password: 'pw', logN: 10 });
    const path = join(dir, 'edited.key');
    writeFileSync(
      path,
      `${canonicalize({ ...file, public: { ...file.public, evmAddress: '0x000000000000000000000000000000000000dEaD' } })}\n`,
    );
    await expect(unlockKeystore(path, 'pw')).rejects.toThrow(CustosError);
  });
});
