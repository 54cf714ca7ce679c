/**
 * Signer benchmarks (issues 3 and 11): decisions per second and decision
 * latency for a 1-input and a 10-input withdrawal, through the real Signer
 * with its real SQLite ledger (WAL, synchronous=FULL: every decision is
 * fsynced before the signature leaves), against the ceiling set by the raw
 * signatures one decision needs, each timed in the same run with the fastest
 * implementation this process has (OpenSSL through node:crypto, or noble
 * where it is faster), printed with its name:
 *   3 Ed25519 verifications (intent, two approvals)
 * + 1 ECDSA secp256k1 signature per input (BIP 143 sighash, SIGHASH_ALL)
 * + 1 Ed25519 signature (the receipt).
 * A durable SQLite commit is measured too, since no decision may skip it,
 * and a 1-input decision over a ledger of 10,000 earlier entries in the
 * limits' window against the same over an empty ledger: the cost of a
 * decision must not grow with what the signer signed before.
 *
 * Batch payouts (issue 13): a 100-output batch from one input, against the
 * ceiling of a 1-input withdrawal (the same signatures), and the virtual
 * bytes and fee of that batch against the same 100 payouts as single
 * withdrawals (1 input and change each, 5 sat/vB).
 *
 * EVM Safe decisions (issue 9): a native ETH withdrawal from a 2-of-3 Safe,
 * through the same Signer and store, against the ceiling of
 *   3 Ed25519 verifications + 1 ECDSA secp256k1 signature (the safeTxHash)
 * + 1 Ed25519 signature (the receipt).
 * The ECDSA signature there is noble's: a Safe owner signs the 32-byte
 * Keccak-256 EIP-712 hash itself, and node:crypto can only sign what it
 * hashes itself (OpenSSL 3.0 has SHA-2 and SHA-3, not Keccak-256), so
 * OpenSSL cannot make that signature; nor does it give the recovery id v.
 * State attestation is OFF in this series (`attestation: 'off'`): it is a
 * JSON-RPC round trip to the signer's node, which measures the node, not
 * the decision; the nonce then comes from the signer's own ledger alone.
 */

import { createPrivateKey, generateKeyPairSync, getCurves, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptToAddress } from '@custos/bitcoin';
import {
  type Address,
  type Amount,
  type Digest,
  digestOf,
  ED25519_BACKEND,
  fromHex,
  generateEd25519,
  type SignerJob,
  sha256,
  signBytes,
  signBytesNoble,
  signDigest,
  utf8,
  verifyEd25519,
} from '@custos/core';
import { evmAddressOf } from '@custos/evm';
import { Signer, SignerStore } from '@custos/signer';
import type { EvmChain } from '@custos/test-support/evm-chain';
import { MemorySource } from '@custos/test-support/memory-source';
import { makeWorld, type World } from '@custos/test-support/world';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import Database from 'better-sqlite3';
import { ETH, makeEvmWorld } from '../packages/signer/test/support/evm-stand.js';
import { measure, type Row, summarize } from './harness.js';

/** What @custos/bitcoin signs inputs with: OpenSSL when this Node's OpenSSL has secp256k1 (its ECDSA_BACKEND). */
const ECDSA_BACKEND = getCurves().includes('secp256k1') ? 'openssl' : 'noble';

export async function signerBench(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-signer-'));
  const row = (figure: string, value: number, unit: string, note?: string) =>
    rows.push({ suite: 'signer', figure, value, unit, ...(note === undefined ? {} : { note }) });
  try {
    // Raw primitives, same run, each with the implementation it was timed with.
    const ed = generateEd25519();
    const d = digestOf('bench', 1, { n: 1 });
    const sig = signDigest(ed.secretKey, d);
    if (sig.kind !== 'ed25519') throw new Error('unexpected');
    const hash = fromHex(d);
    const verify = measure('ed25519 verify', () => {
      verifyEd25519(ed.publicKey, hash, sig.sig);
    });
    const edSignOpenssl = measure('ed25519 sign (openssl)', () => {
      signBytes(ed.secretKey, hash);
    });
    const edSignNoble = measure('ed25519 sign (noble)', () => {
      signBytesNoble(ed.secretKey, hash);
    });
    const ecKey = secp256k1.utils.randomSecretKey();
    const ecSignNoble = measure('ecdsa sign (noble)', () => {
      secp256k1.sign(hash, ecKey, { prehash: false });
    });
    // OpenSSL's secp256k1 (node:crypto), where this Node's OpenSSL has the curve: ECDSA with
    // SHA-256 over 32 bytes, as the signer signs (sha256 of the BIP 143 preimage).
    let ecSignOpenssl: ReturnType<typeof measure> | null = null;
    if (ECDSA_BACKEND === 'openssl') {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      ecSignOpenssl = measure('ecdsa sign (openssl)', () => {
        nodeSign('sha256', hash, privateKey);
      });
    }
    const edSign = edSignOpenssl.perSecond >= edSignNoble.perSecond ? edSignOpenssl : edSignNoble;
    const edSignName =
      edSign === edSignOpenssl && ED25519_BACKEND === 'openssl' ? 'OpenSSL (node:crypto)' : 'noble';
    const ecSign =
      ecSignOpenssl !== null && ecSignOpenssl.perSecond >= ecSignNoble.perSecond
        ? ecSignOpenssl
        : ecSignNoble;
    const ecSignName = ecSign === ecSignOpenssl ? 'OpenSSL (node:crypto)' : 'noble';
    const db = new Database(join(dir, 'fsync.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const durable = () => db.transaction(() => insert.run('x'.repeat(2000)))();
    const commit = measure('sqlite durable commit', durable);
    /**
     * The ceiling's primitives timed again, with the implementations chosen above, right after
     * each series of decisions: on a machine shared with other work the load moves within a
     * run, and a ratio means something only if both sides met the same load.
     */
    const ecKeyOpenssl = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    /**
     * The check each input's signing key gets before it signs (sign.ts, signInput): the child
     * private key imported into OpenSSL, which computes its public key (a point multiplication),
     * compared with the descriptor's. The signer cannot skip it, so it belongs in the floor.
     */
    const sec1 = Buffer.from(`302e0201010420${Buffer.from(ecKey).toString('hex')}a00706052b8104000a`, 'hex');
    const childKeyCheck = () => {
      const k = createPrivateKey({ key: sec1, format: 'der', type: 'sec1' });
      k.export({ format: 'jwk' });
    };
    const primitivesNow = () => {
      const o = { seconds: 0.4 };
      return {
        verify: measure('verify', () => verifyEd25519(ed.publicKey, hash, sig.sig), o).perSecond,
        edSign: measure(
          'ed sign',
          edSign === edSignOpenssl
            ? () => signBytes(ed.secretKey, hash)
            : () => signBytesNoble(ed.secretKey, hash),
          o,
        ).perSecond,
        ecSign: measure(
          'ec sign',
          ecSign === ecSignOpenssl
            ? () => nodeSign('sha256', hash, ecKeyOpenssl)
            : () => secp256k1.sign(hash, ecKey, { prehash: false }),
          o,
        ).perSecond,
        commit: measure('commit', durable, o).perSecond,
        keyCheck: measure('key check', childKeyCheck, o).perSecond,
      };
    };
    const verifyName = ED25519_BACKEND === 'openssl' ? 'OpenSSL (node:crypto)' : 'noble';
    row('raw Ed25519 verify', verify.perSecond, '/s', verifyName);
    row('raw Ed25519 sign, OpenSSL (node:crypto)', edSignOpenssl.perSecond, '/s');
    row('raw Ed25519 sign, noble', edSignNoble.perSecond, '/s');
    if (ecSignOpenssl !== null)
      row('raw ECDSA secp256k1 sign, OpenSSL (node:crypto)', ecSignOpenssl.perSecond, '/s');
    row('raw ECDSA secp256k1 sign, noble', ecSignNoble.perSecond, '/s');
    row('ceiling uses: Ed25519 verify', verify.perSecond, '/s', verifyName);
    row('ceiling uses: Ed25519 sign', edSign.perSecond, '/s', edSignName);
    row('ceiling uses: ECDSA secp256k1 sign', ecSign.perSecond, '/s', ecSignName);
    row('durable SQLite commit (fsync)', commit.perSecond, '/s');

    let stores = 0;
    /** A signer with its own world, store and jobs, warmed up on 5 of them; `history` earlier entries. */
    const setUp = async (
      inputs: number,
      count: number,
      history: number,
      makeJob?: (world: World) => SignerJob,
    ) => {
      const world = makeWorld({
        policy: (p) => ({
          ...p,
          // Customers' addresses (batches, issue 13) under the same two approvals as the book.
          rules: [...p.rules, { ...p.rules[0]!, id: 'customers', match: { destination: { kind: 'any' } } }],
          limits: p.limits.map((l) => ({ ...l, max: '2100000000000000' as never })),
        }),
      });
      const store = new SignerStore(join(dir, `signer-${++stores}.db`));
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
      const jobs = Array.from(
        { length: count + 5 },
        () => makeJob?.(world) ?? world.withdrawal(1_000_000n, { inputs }).job,
      );
      for (const job of jobs.slice(0, 5)) await signer.handle(job, source);
      if (history > 0) {
        // Earlier entries of the same wallet, asset, destination and requester, all inside the
        // limits' windows, so every rolling limit sums over them.
        const model = store.allLedger()[0];
        if (model === undefined) throw new Error('no ledger row to copy');
        store.exclusive(() => {
          for (let i = 0; i < history; i++) {
            const id = digestOf('bench-history', 1, { i }) as Digest;
            store.insertLedger({
              ...model,
              intent: id,
              txid: id,
              job: `history-${i}`,
              amount: String(1000 + (i % 97)) as never,
              at: world.clock.now - 3_600_000 + i * 300,
            });
          }
        });
        // Those rows were written by the set-up, not by a decision: move them from the WAL into
        // the database file now, so the first timed commit does not pay for checkpointing them.
        store.db.pragma('wal_checkpoint(TRUNCATE)');
      }
      const samples: number[] = [];
      let seconds = 0;
      const next = async (i: number) => {
        const t = performance.now();
        const r = await signer.handle(jobs[5 + i]!, source);
        const ms = performance.now() - t;
        samples.push(ms);
        seconds += ms / 1000;
        if (r.receipt.outcome !== 'signed')
          throw new Error(`bench job refused: ${r.receipt.code} ${r.message}`);
      };
      return { store, samples, next, seconds: () => seconds };
    };
    const report = (label: string, inputs: number, run: Awaited<ReturnType<typeof setUp>>) => {
      const m = summarize(label, run.samples, run.seconds());
      const p = primitivesNow();
      const entries = run.store.ledgerCount();
      run.store.close();
      row(`${label}: decisions`, m.perSecond, '/s', `ledger ${entries} entries at the end`);
      row(`${label}: p50 latency`, m.p50Ms, 'ms');
      row(`${label}: p99 latency`, m.p99Ms, 'ms');
      const rawSeconds = 3 / p.verify + inputs / p.ecSign + 1 / p.edSign;
      row(
        `${label}: ceiling (raw signatures only)`,
        1 / rawSeconds,
        '/s',
        `primitives timed again after the series: verify ${Math.round(p.verify)}, Ed25519 sign ${Math.round(p.edSign)}, ECDSA sign ${Math.round(p.ecSign)}, commit ${Math.round(p.commit)} /s`,
      );
      row(`${label}: decisions / ceiling`, m.perSecond * rawSeconds, 'ratio');
      const withCommit = rawSeconds + 1 / p.commit;
      row(`${label}: ceiling incl. one durable commit`, 1 / withCommit, '/s');
      row(`${label}: decisions / ceiling incl. commit`, m.perSecond * withCommit, 'ratio');
      // What no decision can go below while it keeps its checks: the raw signatures, each input's
      // key check (a point multiplication) and the commit. Its ratio to the raw-signature time is
      // the most of the raw ceiling a decision could reach if everything else took no time.
      const floor = withCommit + inputs / p.keyCheck;
      row(
        `${label}: floor (signatures, key checks, commit)`,
        1 / floor,
        '/s',
        `key check ${Math.round(p.keyCheck)} /s`,
      );
      row(`${label}: decisions / floor`, m.perSecond * floor, 'ratio');
      row(`${label}: most reachable of the raw ceiling`, rawSeconds / floor, 'ratio', 'floor / raw time');
      return m;
    };

    // Sequential decisions, one at a time, each durable before the next.
    for (const [inputs, count] of [
      [1, 300],
      [10, 60],
    ] as const) {
      const run = await setUp(inputs, count, 0);
      for (let i = 0; i < count; i++) await run.next(i);
      report(`${inputs}-input withdrawal`, inputs, run);
    }

    // Cost independent of history: two signers, one with an empty ledger, one with 10,000 earlier
    // entries, deciding alternately so that both meet the same load on this shared machine.
    const empty = await setUp(1, 200, 0);
    const full = await setUp(1, 200, 10_000);
    for (let i = 0; i < 200; i++) {
      await empty.next(i);
      await full.next(i);
    }
    const e = report('1-input, empty ledger (paired)', 1, empty);
    const f = report('1-input, 10,000 earlier ledger entries (paired)', 1, full);
    row('history: decisions with 10,000 entries / with none', f.perSecond / e.perSecond, 'ratio');
    row('history: p50 with 10,000 entries / with none', f.p50Ms / e.p50Ms, 'ratio');

    // Batch payouts (issue 13): a 100-output batch from one input, decided against the ceiling of a
    // 1-input withdrawal (the same signatures: three verifications, one input, one receipt), then
    // the bytes and fee of that batch against the same 100 payouts as single withdrawals.
    const payouts = batchPayouts(100);
    const batchJob = (world: World) => {
      const intent = world.intent(payouts.total, { to: payouts.outputs[0]!.to, outputs: payouts.outputs });
      const built = world.build(intent, { utxos: world.utxos([payouts.total + 200_000n]) });
      return world.job(intent, world.approve(intent), built.psbt);
    };
    const batchRun = await setUp(1, 60, 0, batchJob);
    for (let i = 0; i < 60; i++) await batchRun.next(i);
    report('100-output batch (1 input)', 1, batchRun);
    const sizes = makeWorld();
    const one = sizes.intent(payouts.total, { to: payouts.outputs[0]!.to, outputs: payouts.outputs });
    const batch = sizes.build(one, { utxos: sizes.utxos([payouts.total + 200_000n]) });
    let singleVbytes = 0;
    let singleFee = 0n;
    for (const o of payouts.outputs) {
      const single = sizes.intent(BigInt(o.amount), { to: o.to });
      const b = sizes.build(single, { utxos: sizes.utxos([BigInt(o.amount) + 50_000n]) });
      singleVbytes += b.vsize;
      singleFee += b.fee;
    }
    row('batch: one 100-output batch, virtual bytes', batch.vsize, 'vB', '1 input, 2-of-3 P2WSH, change');
    row('batch: 100 single withdrawals, virtual bytes', singleVbytes, 'vB', '1 input and change each');
    row('batch: vbytes batch / singles', batch.vsize / singleVbytes, 'ratio');
    row('batch: one 100-output batch, fee at 5 sat/vB', Number(batch.fee), 'sat');
    row('batch: 100 single withdrawals, fee at 5 sat/vB', Number(singleFee), 'sat');
    row('batch: fee batch / singles', Number(batch.fee) / Number(singleFee), 'ratio');

    await evmSeries(dir, row, edSign === edSignOpenssl, ed, hash, sig.sig, durable);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** `n` payouts of 10,000 sat and up to distinct regtest P2WPKH addresses nobody holds. */
function batchPayouts(n: number): { outputs: { to: Address; amount: Amount }[]; total: bigint } {
  const outputs = Array.from({ length: n }, (_, k) => {
    const program = sha256(utf8(`bench batch customer ${k}`)).slice(0, 20);
    const to = scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest') as Address;
    return { to, amount: String(10_000 + 100 * k) as Amount };
  });
  return { outputs, total: outputs.reduce((s, o) => s + BigInt(o.amount), 0n) };
}

/**
 * EVM Safe decisions: native ETH withdrawals from a 2-of-3 Safe, each at the
 * next nonce of the signer's own ledger, attestation off (see the header).
 */
async function evmSeries(
  dir: string,
  row: (figure: string, value: number, unit: string, note?: string) => void,
  edSignOpenssl: boolean,
  ed: { secretKey: Uint8Array; publicKey: string },
  hash: Uint8Array,
  sigBytes: string,
  durable: () => void,
): Promise<void> {
  const secret = secp256k1.utils.randomSecretKey();
  const ecSignEvm = measure('ecdsa sign (noble, recovered)', () => {
    secp256k1.sign(hash, secret, { prehash: false, format: 'recovered' });
  });
  row(
    'raw ECDSA secp256k1 sign of a given hash, with recovery id, noble',
    ecSignEvm.perSecond,
    '/s',
    'what a Safe owner signature needs; OpenSSL cannot sign a given Keccak hash',
  );

  // The governed Safe at fixed addresses: the decision reads no chain with attestation off.
  const at = (n: number) => `0x${n.toString(16).padStart(2, '0').repeat(20)}`;
  const stub = {
    chainId: 31337,
    accounts: Array.from({ length: 8 }, () => {
      const k = secp256k1.utils.randomSecretKey();
      return { privateKey: `0x${Buffer.from(k).toString('hex')}`, address: evmAddressOf(k) };
    }),
    token: evmAddressOf(secp256k1.utils.randomSecretKey()),
    safeContracts: {
      singleton: at(0x41),
      singletonCodeHash: `0x${'1b'.repeat(32)}`,
      fallbackHandler: at(0xfd),
    },
    deploySafe: async () => ({ address: evmAddressOf(secp256k1.utils.randomSecretKey()) }),
  } as unknown as EvmChain;
  const count = 300;
  const world = await makeEvmWorld(stub, [
    { id: 'signer-1', identityKey: ed.publicKey, evmAddress: evmAddressOf(secret) },
    {
      id: 'signer-2',
      identityKey: generateEd25519().publicKey,
      evmAddress: evmAddressOf(secp256k1.utils.randomSecretKey()),
    },
  ]);
  const store = new SignerStore(join(dir, 'signer-evm.db'));
  const signer = Signer.init(
    {
      id: 'signer-1',
      identitySecret: ed.secretKey,
      key: makeWorld().keys[0]!,
      pinnedGenesis: world.orgId,
      chains: [world.chainName],
      store,
      evm: { secret, rpc: new Map(), attestation: 'off' },
    },
    world.genesis,
  );
  const source = new MemorySource([world.genesis]);
  const jobs = Array.from({ length: count + 5 }, (_, i) => {
    const intent = world.intent({ asset: 'eth', amount: ETH / 1000n });
    return world.job(
      `evm-${i}`,
      'signer-1',
      intent,
      world.approve(intent),
      world.proposal(intent, BigInt(i)),
    );
  });
  const samples: number[] = [];
  let seconds = 0;
  for (const [i, job] of jobs.entries()) {
    const t = performance.now();
    const r = await signer.handle(job, source);
    const ms = performance.now() - t;
    if (r.receipt.outcome !== 'signed' || r.safeSignature === undefined)
      throw new Error(`bench EVM job refused: ${r.receipt.code} ${r.message}`);
    if (i < 5) continue; // warm-up
    samples.push(ms);
    seconds += ms / 1000;
  }
  const entries = store.ledgerCount();
  store.close();
  const m = summarize('EVM Safe ETH withdrawal', samples, seconds);
  // The ceiling's primitives again, right after the series (same load).
  const o = { seconds: 0.4 };
  const verify = measure('verify', () => verifyEd25519(ed.publicKey, hash, sigBytes), o).perSecond;
  const edSign = measure(
    'ed sign',
    edSignOpenssl ? () => signBytes(ed.secretKey, hash) : () => signBytesNoble(ed.secretKey, hash),
    o,
  ).perSecond;
  const ecSign = measure(
    'ec sign',
    () => secp256k1.sign(hash, secret, { prehash: false, format: 'recovered' }),
    o,
  ).perSecond;
  const commit = measure('commit', durable, o).perSecond;
  const label = 'EVM Safe ETH withdrawal (attestation off)';
  row(`${label}: decisions`, m.perSecond, '/s', `ledger ${entries} entries at the end`);
  row(`${label}: p50 latency`, m.p50Ms, 'ms');
  row(`${label}: p99 latency`, m.p99Ms, 'ms');
  const rawSeconds = 3 / verify + 1 / ecSign + 1 / edSign;
  row(
    `${label}: ceiling (raw signatures only)`,
    1 / rawSeconds,
    '/s',
    `primitives timed again after the series: Ed25519 verify ${Math.round(verify)}, Ed25519 sign ${Math.round(edSign)} (${edSignOpenssl ? 'OpenSSL' : 'noble'}), ECDSA sign ${Math.round(ecSign)} (noble), commit ${Math.round(commit)} /s`,
  );
  row(`${label}: decisions / ceiling`, m.perSecond * rawSeconds, 'ratio');
  const withCommit = rawSeconds + 1 / commit;
  row(`${label}: ceiling incl. one durable commit`, 1 / withCommit, '/s');
  row(`${label}: decisions / ceiling incl. commit`, m.perSecond * withCommit, 'ratio');
}
