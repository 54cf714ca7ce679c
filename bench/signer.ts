/**
 * Signer benchmarks (issue 3): decisions per second and decision latency for
 * a 1-input and a 10-input withdrawal, through the real Signer with its real
 * SQLite ledger (WAL, synchronous=FULL: every decision is fsynced before the
 * signature leaves), against the ceiling set by the raw signatures one
 * decision needs, measured in the same run:
 *   3 Ed25519 verifications (intent, two approvals)
 * + 1 ECDSA secp256k1 signature per input (BIP 143 sighash, SIGHASH_ALL)
 * + 1 Ed25519 signature (the receipt).
 * A durable SQLite commit is measured too, since no decision may skip it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, fromHex, generateEd25519, signBytes, signDigest, verifyEd25519 } from '@custos/core';
import { Signer, SignerStore } from '@custos/signer';
import { MemorySource } from '@custos/test-support/memory-source';
import { makeWorld } from '@custos/test-support/world';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import Database from 'better-sqlite3';
import { measure, type Row, summarize } from './harness.js';

export async function signerBench(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-signer-'));
  try {
    // Raw primitives, same run.
    const ed = generateEd25519();
    const d = digestOf('bench', 1, { n: 1 });
    const sig = signDigest(ed.secretKey, d);
    if (sig.kind !== 'ed25519') throw new Error('unexpected');
    const verify = measure('ed25519 verify', () => {
      verifyEd25519(ed.publicKey, fromHex(d), sig.sig);
    });
    const edSign = measure('ed25519 sign', () => {
      signBytes(ed.secretKey, fromHex(d));
    });
    const ecKey = secp256k1.utils.randomSecretKey();
    const hash = fromHex(d);
    const ecSign = measure('ecdsa sign', () => {
      secp256k1.sign(hash, ecKey, { prehash: false });
    });
    const db = new Database(join(dir, 'fsync.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const commit = measure('sqlite durable commit', () => {
      db.transaction(() => insert.run('x'.repeat(2000)))();
    });
    db.close();
    rows.push({ suite: 'signer', figure: 'raw Ed25519 verify', value: verify.perSecond, unit: '/s' });
    rows.push({ suite: 'signer', figure: 'raw ECDSA secp256k1 sign', value: ecSign.perSecond, unit: '/s' });
    rows.push({ suite: 'signer', figure: 'raw Ed25519 sign', value: edSign.perSecond, unit: '/s' });
    rows.push({
      suite: 'signer',
      figure: 'durable SQLite commit (fsync)',
      value: commit.perSecond,
      unit: '/s',
    });

    for (const [inputs, count] of [
      [1, 200],
      [10, 60],
    ] as const) {
      const world = makeWorld({
        policy: (p) => ({ ...p, limits: p.limits.map((l) => ({ ...l, max: '2100000000000000' as never })) }),
      });
      const store = new SignerStore(join(dir, `signer-${inputs}.db`));
      const signer = Signer.init(
        {
          id: 'signer-1',
          identitySecret: world.org.signer.secretKey,
          key: world.keys[0]!,
          pinnedGenesis: world.org.orgId,
          chains: ['bitcoin:regtest'],
          store,
          clock: () => world.clock.now,
        },
        world.org.genesis,
      );
      const source = new MemorySource(world.governance);
      const jobs = Array.from({ length: count }, () => world.withdrawal(1_000_000n, { inputs }).job);
      // Warm up on a few, then time every decision.
      for (const job of jobs.slice(0, 5)) await signer.handle(job, source);
      const samples: number[] = [];
      const start = performance.now();
      for (const job of jobs.slice(5)) {
        const t = performance.now();
        const r = await signer.handle(job, source);
        samples.push(performance.now() - t);
        if (r.receipt.outcome !== 'signed')
          throw new Error(`bench job refused: ${r.receipt.code} ${r.message}`);
      }
      const m = summarize(`decide ${inputs}`, samples, (performance.now() - start) / 1000);
      store.close();
      const rawSeconds = 3 / verify.perSecond + inputs / ecSign.perSecond + 1 / edSign.perSecond;
      const ceiling = 1 / rawSeconds;
      const label = `${inputs}-input withdrawal`;
      rows.push({ suite: 'signer', figure: `${label}: decisions`, value: m.perSecond, unit: '/s' });
      rows.push({ suite: 'signer', figure: `${label}: p50 latency`, value: m.p50Ms, unit: 'ms' });
      rows.push({ suite: 'signer', figure: `${label}: p99 latency`, value: m.p99Ms, unit: 'ms' });
      rows.push({
        suite: 'signer',
        figure: `${label}: ceiling (raw signatures only)`,
        value: ceiling,
        unit: '/s',
      });
      rows.push({
        suite: 'signer',
        figure: `${label}: decisions / ceiling`,
        value: m.perSecond / ceiling,
        unit: 'ratio',
      });
      rows.push({
        suite: 'signer',
        figure: `${label}: ceiling incl. one durable commit`,
        value: 1 / (rawSeconds + 1 / commit.perSecond),
        unit: '/s',
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
