/**
 * A thief's tools for the watcher tests (issue 12): the signers' keys copied
 * out with `custos signer export-key`, and a spend of a wallet coin signed
 * with them by bitcoinjs-lib alone, no Custos code on the signing path.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Deployment } from '@custos/test-support/deployment';
import { signerCli } from '@custos/test-support/signer-process';
import { BIP32Factory } from 'bip32';
import * as bitcoin from 'bitcoinjs-lib';
import * as ecc from 'tiny-secp256k1';

const bip32 = BIP32Factory(ecc);
const REGTEST = bitcoin.networks.regtest;

/** The account keys (tprv) of `ids`, exported from the deployment's signers as an operator would. */
export async function exportKeys(d: Deployment, ids: readonly string[]): Promise<string[]> {
  const xprvs: string[] = [];
  for (const id of ids) {
    const out = join(d.dir, `${id}.xprv.json`);
    const r = await signerCli(['export-key', '--config', join(d.dir, `${id}.json`), '--out', out], {
      env: d.env,
      input: `export ${id}\n`,
    });
    if (r.code !== 0) throw new Error(`export-key ${id}: ${r.stderr}`);
    xprvs.push((JSON.parse(readFileSync(out, 'utf8')) as { xprv: string }).xprv);
  }
  return xprvs;
}

/** A spend of the wallet's coin at receive `index` to the thief's address, signed with `xprvs`. */
export function steal(
  d: Deployment,
  xprvs: readonly string[],
  coin: { txid: string; vout: number },
  index: number,
  value: bigint,
): bitcoin.Transaction {
  const keys = [...d.descriptor.matchAll(/\](tpub[1-9A-HJ-NP-Za-km-z]+)\/0\/\*/g)].map((m) =>
    Buffer.from(bip32.fromBase58(m[1]!, REGTEST).derive(0).derive(index).publicKey),
  );
  const p2ms = bitcoin.payments.p2ms({ m: 2, pubkeys: keys.sort(Buffer.compare), network: REGTEST });
  const p2wsh = bitcoin.payments.p2wsh({ redeem: p2ms, network: REGTEST });
  const thief = bitcoin.payments.p2wpkh({
    pubkey: Buffer.from(bip32.fromSeed(Buffer.alloc(32, 9), REGTEST).publicKey),
    network: REGTEST,
  });
  const psbt = new bitcoin.Psbt({ network: REGTEST });
  psbt.addInput({
    hash: coin.txid,
    index: coin.vout,
    witnessUtxo: { script: p2wsh.output!, value },
    witnessScript: p2ms.output!,
  });
  psbt.addOutput({ script: thief.output!, value: value - 5_000n });
  for (const x of xprvs) psbt.signInput(0, bip32.fromBase58(x, REGTEST).derive(0).derive(index));
  psbt.finalizeAllInputs();
  return psbt.extractTransaction();
}
