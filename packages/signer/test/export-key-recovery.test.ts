/**
 * Recovery without Custos (issue 12): if Custos is gone, the owners still
 * move their funds. Two signers run `custos signer export-key` (no quorum;
 * the keystore password and a typed confirmation, recorded in each signer's
 * own database first), and a regtest wallet's coin is spent with those two
 * exported keys and the wallet's descriptor through bitcoinjs-lib, bip32 and
 * tiny-secp256k1 alone: no Custos code on the signing path. The node accepts
 * and mines the spend. A wrong confirmation or password writes nothing, and
 * an existing file is never overwritten.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveAddress } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import { initKeystore, type KeystoreInfo, PASSWORD, signerCli } from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { BIP32Factory } from 'bip32';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';

const bip32 = BIP32Factory(ecc);
const REGTEST = bitcoin.networks.regtest;

let dir: string;
let node: RegtestNode;
let world: World;
let keys: KeystoreInfo[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-export-key-'));
  keys = await Promise.all([initKeystore(dir, 'signer-1'), initKeystore(dir, 'signer-2')]);
  world = makeWorld({ firstKey: keys[0]!.descriptorKey, secondKey: keys[1]!.descriptorKey });
  for (const k of keys) {
    writeFileSync(
      join(dir, `${k.id}.json`),
      JSON.stringify({
        id: k.id,
        genesis: world.org.orgId,
        keystore: `${k.id}.key`,
        database: `${k.id}.db`,
        chains: ['bitcoin:regtest'],
      }),
    );
  }
  node = await startRegtestNode();
  await node.activateSegwit();
}, 120_000);

afterAll(async () => {
  await node?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const env = { CUSTOS_SIGNER_PASSWORD: PASSWORD };

interface Exported {
  signer: string;
  network: string;
  fingerprint: string;
  path: string;
  xpub: string;
  xprv: string;
  descriptorKey: string;
}

describe('custos signer export-key', () => {
  it('refuses a wrong confirmation or password and an existing file, writing nothing; records each export in the signer database', async () => {
    const config = join(dir, 'signer-1.json');
    const out = join(dir, 'refused.json');
    const typedWrong = await signerCli(['export-key', '--config', config, '--out', out], {
      env,
      input: 'export signer-2\n',
    });
    expect(typedWrong.code).toBe(1);
    expect(typedWrong.stderr).toContain('the confirmation is "export signer-1"; nothing was written');
    const badPassword = await signerCli(
      ['export-key', '--config', config, '--out', out, '--confirm', 'export signer-1'],
      {
        env: { CUSTOS_SIGNER_PASSWORD: 'not the password' },
      },
    );
    expect(badPassword.code).not.toBe(0);
    expect(badPassword.stderr).toContain('BAD_PASSWORD');
    expect(existsSync(out)).toBe(false);
    writeFileSync(out, 'keep me');
    const taken = await signerCli(
      ['export-key', '--config', config, '--out', out, '--confirm', 'export signer-1'],
      {
        env,
      },
    );
    expect(taken.code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.keyExports()).toEqual([]);
    } finally {
      store.close();
    }
  });

  it("two exported keys and the descriptor move the wallet's coin through bitcoinjs-lib alone; the node mines it", async () => {
    const script = deriveAddress(world.descriptor, 0, 3).script;
    await node.fund(script, 50_000_000n);
    await node.mine(1);

    const exported: Exported[] = [];
    for (const k of keys) {
      const out = join(dir, `${k.id}.xprv.json`);
      const r = await signerCli(['export-key', '--config', join(dir, `${k.id}.json`), '--out', out], {
        env,
        input: `export ${k.id}\n`,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('"event":"signer.key-exported"');
      expect(r.stdout).not.toMatch(/tprv/);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      exported.push(JSON.parse(readFileSync(out, 'utf8')) as Exported);
      const store = new SignerStore(join(dir, `${k.id}.db`));
      try {
        expect(store.keyExports()).toEqual([
          expect.objectContaining({ fingerprint: k.descriptorKey.fingerprint, destination: out }),
        ]);
      } finally {
        store.close();
      }
      const status = await signerCli(['status', '--config', join(dir, `${k.id}.json`)]);
      expect(status.stdout).toContain(`KEY EXPORTED at `);
    }

    // From here on, no Custos code: the descriptor's text, the two exported files, bitcoinjs-lib.
    const descriptor = world.org.state.wallets.get('btc-main')!;
    const text = (descriptor as { descriptor: string }).descriptor;
    const keyExpressions = [
      ...text.matchAll(/\[([0-9a-f]{8})\/([0-9h'/]+)\](tpub[1-9A-HJ-NP-Za-km-z]+)\/0\/\*/g),
    ];
    expect(keyExpressions).toHaveLength(3);
    const childPubkeys = keyExpressions.map((m) =>
      Buffer.from(bip32.fromBase58(m[3]!, REGTEST).derive(0).derive(3).publicKey),
    );
    const sorted = [...childPubkeys].sort(Buffer.compare);
    const p2ms = bitcoin.payments.p2ms({ m: 2, pubkeys: sorted, network: REGTEST });
    const p2wsh = bitcoin.payments.p2wsh({ redeem: p2ms, network: REGTEST });
    expect(Buffer.from(p2wsh.output!).toString('hex')).toBe(Buffer.from(script).toString('hex'));

    // Find the coin on the node.
    const tip = await node.rpc.getBlockCount();
    const block = bitcoin.Block.fromHex(
      Buffer.from(await node.rpc.getBlockRaw(await node.rpc.getBlockHash(tip))).toString('hex'),
    );
    let coin: { txid: string; vout: number; value: bigint } | undefined;
    for (const tx of block.transactions ?? []) {
      tx.outs.forEach((o, vout) => {
        if (Buffer.from(o.script).equals(Buffer.from(script)))
          coin = { txid: tx.getId(), vout, value: BigInt(o.value) };
      });
    }
    expect(coin?.value).toBe(50_000_000n);

    const payee = bitcoin.payments.p2wpkh({
      pubkey: Buffer.from(bip32.fromSeed(Buffer.alloc(32, 7), REGTEST).publicKey),
      network: REGTEST,
    });
    const fee = 5_000n;
    const psbt = new bitcoin.Psbt({ network: REGTEST });
    psbt.addInput({
      hash: coin!.txid,
      index: coin!.vout,
      witnessUtxo: { script: p2wsh.output!, value: coin!.value },
      witnessScript: p2ms.output!,
    });
    psbt.addOutput({ script: payee.output!, value: coin!.value - fee });
    for (const e of exported) {
      const account = bip32.fromBase58(e.xprv, REGTEST);
      expect(account.neutered().toBase58()).toBe(e.xpub);
      expect(e.descriptorKey).toBe(`[${e.fingerprint}/${e.path}]${e.xprv}`);
      psbt.signInput(0, account.derive(0).derive(3));
    }
    psbt.finalizeAllInputs();
    const tx = psbt.extractTransaction();
    const txid = await node.rpc.sendRawTransaction(tx.toHex());
    expect(txid).toBe(tx.getId());
    await node.mine(1);
    const mined = bitcoin.Block.fromHex(
      Buffer.from(await node.rpc.getBlockRaw(await node.rpc.getBlockHash(tip + 1))).toString('hex'),
    );
    expect(mined.transactions?.map((t) => t.getId())).toContain(txid);
  });
});
