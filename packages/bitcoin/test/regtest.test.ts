/**
 * The chain edge against a real node: bcoin in regtest, in-process, on 127.0.0.1.
 * Covers the JSON-RPC client (rpc.ts), the raw block parser (block.ts), the UTXO
 * tracker (scanner.ts) and the regtest harness itself (regtest.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CustosError, fromHex, toHex } from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { p2wpkh, RawTx, Transaction } from '@scure/btc-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBlock, parseTransaction } from '../src/block.js';
import { type RegtestNode, startRegtestNode } from '../src/regtest.js';
import { BitcoinRpc } from '../src/rpc.js';
import { syncChain, UtxoTracker, type WatchedScript } from '../src/scanner.js';

function freshKey(): { priv: Uint8Array; script: Uint8Array } {
  const priv = secp256k1.utils.randomSecretKey();
  return { priv, script: p2wpkh(secp256k1.getPublicKey(priv, true)).script };
}

/** Runs `fn` and returns the CustosError it throws (fails the test if it throws anything else or nothing). */
async function caught(fn: () => Promise<unknown> | unknown): Promise<CustosError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CustosError) return err;
    throw err;
  }
  throw new Error('expected a CustosError, nothing was thrown');
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

let node: RegtestNode;
let startMs = 0;
let segwitMs = 0;

// The wallet the tracker watches: a receive key and a change key.
const receive = freshKey();
const change = freshKey();
const watched = new Map<string, WatchedScript>([
  [toHex(receive.script), { wallet: 'treasury', branch: 0, index: 0 }],
  [toHex(change.script), { wallet: 'treasury', branch: 1, index: 0 }],
]);
const watch = (script: Uint8Array): WatchedScript | null => watched.get(toHex(script)) ?? null;
const tracker = new UtxoTracker(watch);
let scanFrom = 0;
let funding: { txid: string; vout: number; raw: Uint8Array };
let spendBlockHash = '';

beforeAll(async () => {
  const t0 = performance.now();
  node = await startRegtestNode();
  startMs = performance.now() - t0;
});

afterAll(async () => {
  await node?.close();
  console.info(`regtest node: start ${startMs.toFixed(0)} ms, segwit activation ${segwitMs.toFixed(0)} ms`);
});

describe('regtest node', () => {
  it('listens on 127.0.0.1 and answers getblockchaininfo through BitcoinRpc', async () => {
    expect(node.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const info = await node.rpc.getChainInfo();
    expect(info.chain).toBe('regtest');
    expect(info.blocks).toBe(await node.rpc.getBlockCount());
    expect(info.bestBlockHash).toBe(await node.rpc.getBlockHash(info.blocks));
  });

  it('activates segwit (BIP 9 deployment active for the next block)', async () => {
    const t0 = performance.now();
    await node.activateSegwit();
    segwitMs = performance.now() - t0;
    const info = await node.rpc.call<{ bip9_softforks: { segwit: { status: string } } }>(
      'getblockchaininfo',
      [],
    );
    expect(info.bip9_softforks.segwit.status).toBe('active');
    expect(await node.rpc.getBlockCount()).toBeGreaterThanOrEqual(431);
  });

  it('funds a P2WPKH script of a fresh key through sendrawtransaction', async () => {
    scanFrom = (await node.rpc.getBlockCount()) + 1;
    funding = await node.fund(receive.script, 250_000n);
    expect(await node.rpc.getRawMempool()).toContain(funding.txid);
    // getrawtransaction finds a mempool transaction on both nodes, and it is the bytes sent.
    expect(toHex(await node.rpc.getRawTransaction(funding.txid))).toBe(toHex(funding.raw));
    const parsed = parseTransaction(funding.raw);
    expect(parsed.txid).toBe(funding.txid);
    const out = parsed.tx.getOutput(funding.vout);
    expect(out.amount).toBe(250_000n);
    expect(toHex(out.script ?? new Uint8Array())).toBe(toHex(receive.script));
  });

  it('mines blocks whose coinbase pays a given script', async () => {
    const target = freshKey();
    const hashes = await node.mineToScript(target.script, 2);
    expect(hashes).toHaveLength(2);
    const block = parseBlock(await node.rpc.getBlockRaw(hashes[1]!));
    const coinbaseOut = block.txs[0]!.tx.getOutput(0);
    expect(toHex(coinbaseOut.script ?? new Uint8Array())).toBe(toHex(target.script));
    // The funding transaction was in the mempool, so the first of these blocks confirmed it.
    expect(await node.rpc.getRawMempool()).not.toContain(funding.txid);
  });
});

describe('UtxoTracker over JSON-RPC', () => {
  it('finds the funded output with its full previous transaction', async () => {
    const res = await syncChain(node.rpc, tracker, { startHeight: scanFrom });
    expect(res.caughtUp).toBe(true);
    expect(res.tip?.hash).toBe((await node.rpc.getChainInfo()).bestBlockHash);
    const utxos = tracker.utxos('treasury');
    expect(utxos).toHaveLength(1);
    const u = utxos[0]!;
    expect(u).toMatchObject({
      txid: funding.txid,
      vout: 0,
      value: 250_000n,
      branch: 0,
      index: 0,
      coinbase: false,
    });
    expect(toHex(u.prevTx)).toBe(toHex(funding.raw));
    expect(parseTransaction(u.prevTx).txid).toBe(u.txid);
    expect(u.height).toBe(scanFrom);
    expect(u.confirmations(res.tip!.height)).toBe(2);
    expect(tracker.utxos('another wallet')).toEqual([]);
  });

  it('leaves out an output marked spent until released', () => {
    expect(tracker.spend(funding.txid, 0)).toBe(true);
    expect(tracker.utxos('treasury')).toEqual([]);
    expect(tracker.utxos('treasury', { includePending: true })[0]?.pending).toBe(true);
    expect(tracker.release(funding.txid, 0)).toBe(true);
    expect(tracker.utxos('treasury')).toHaveLength(1);
    expect(tracker.spend('00'.repeat(32), 0)).toBe(false);
  });

  it('round-trips through toJSON/fromJSON and refuses a state whose amount was edited', () => {
    const json = JSON.parse(JSON.stringify(tracker.toJSON())) as unknown;
    const restored = UtxoTracker.fromJSON(json, watch);
    expect(restored.toJSON()).toEqual(tracker.toJSON());
    expect(restored.utxos('treasury')[0]?.value).toBe(250_000n);

    const edited = JSON.parse(JSON.stringify(tracker.toJSON())) as { utxos: { value: string }[] };
    edited.utxos[0]!.value = '2500000';
    expect(() => UtxoTracker.fromJSON(edited, watch)).toThrow(/does not match its transaction/);
    const unknownField = { ...(JSON.parse(JSON.stringify(tracker.toJSON())) as object), extra: 1 };
    expect(() => UtxoTracker.fromJSON(unknownField, watch)).toThrow(CustosError);
  });
});

describe('spending through the node', () => {
  let signed: Uint8Array;

  it('signs a spend of the tracked output with @scure/btc-signer', () => {
    const u = tracker.utxos('treasury')[0]!;
    const tx = new Transaction();
    // The full previous transaction, as a signer needs it to prove a segwit v0 input's amount.
    tx.addInput({ txid: u.txid, index: u.vout, nonWitnessUtxo: u.prevTx });
    tx.addOutput({ script: change.script, amount: u.value - 2_000n });
    tx.sign(receive.priv);
    tx.finalize();
    signed = tx.extract();
    expect(parseTransaction(signed).txid).toBe(tx.id);
  });

  it('a transaction whose amount was changed after signing is rejected with CHAIN_REJECTED', async () => {
    const decoded = RawTx.decode(signed);
    const out = decoded.outputs[0]!;
    const tampered = RawTx.encode({ ...decoded, outputs: [{ ...out, amount: out.amount - 1_000n }] });
    const err = await caught(() => node.rpc.sendRawTransaction(toHex(tampered)));
    expect(err.code).toBe('CHAIN_REJECTED');
    expect(err.details.rpcCode).toBe(-26);
    expect(String(err.details.reason)).toMatch(/script-verify-flag/);
    expect(err.message).toContain(String(err.details.reason));
    expect(await node.rpc.getRawMempool()).toEqual([]);
  });

  it('the signed transaction is accepted (sent three times at once, as coordinators may: each gets its txid, as from Core), mined, and the tracker sees the output spent', async () => {
    const sent = await Promise.all([1, 2, 3].map(() => node.rpc.sendRawTransaction(toHex(signed))));
    const txid = sent[0]!;
    expect(sent).toEqual([txid, txid, txid]);
    expect(await node.rpc.sendRawTransaction(toHex(signed))).toBe(txid);
    expect(await node.rpc.getRawMempool()).toEqual([txid]);
    await node.mine(1);
    const res = await syncChain(node.rpc, tracker);
    expect(res).toMatchObject({ applied: 1, disconnected: 0, caughtUp: true });
    spendBlockHash = res.tip!.hash;
    expect(tracker.get(funding.txid, 0)).toBeNull();
    const utxos = tracker.utxos('treasury');
    expect(utxos.map((u) => [u.txid, u.vout, u.value, u.branch])).toEqual([[txid, 0, 248_000n, 1]]);
  });

  it('sending the same transaction again is CHAIN_REJECTED (its inputs are spent)', async () => {
    const err = await caught(() => node.rpc.sendRawTransaction(toHex(signed)));
    expect(err.code).toBe('CHAIN_REJECTED');
  });

  it('follows a reorg: an invalidated block is disconnected and its spend undone', async () => {
    const before = tracker.utxos('treasury');
    await node.rpc.call('invalidateblock', [spendBlockHash]);
    const back = await syncChain(node.rpc, tracker);
    expect(back).toMatchObject({ applied: 0, disconnected: 1 });
    // The funding output is unspent again; the change output of the undone spend is gone.
    expect(tracker.utxos('treasury').map((u) => u.txid)).toEqual([funding.txid]);

    // A competing block at the same height (bcoin's invalidateblock also empties the mempool).
    await node.mineToScript(freshKey().script, 2);
    const forward = await syncChain(node.rpc, tracker);
    expect(forward).toMatchObject({ applied: 2, disconnected: 0, caughtUp: true });
    expect(forward.tip?.hash).toBe((await node.rpc.getChainInfo()).bestBlockHash);
    expect(tracker.utxos('treasury').map((u) => u.txid)).toEqual([funding.txid]);
    expect(before.map((u) => u.txid)).not.toContain(funding.txid);
  });

  it('refuses a block that does not extend its tip, and a reorg deeper than its undo data', async () => {
    const small = new UtxoTracker(watch, { maxUndo: 2 });
    const height = await node.rpc.getBlockCount();
    const res = await syncChain(node.rpc, small, { startHeight: height - 2 });
    expect(res).toMatchObject({ applied: 3, caughtUp: true });
    const old = parseBlock(await node.rpc.getBlockRaw(await node.rpc.getBlockHash(height - 1)));
    expect((await caught(() => small.applyBlock(height + 1, old))).code).toBe('CONFLICT');
    small.disconnectTip();
    small.disconnectTip();
    expect(small.tip?.height).toBe(height - 2);
    expect((await caught(() => small.disconnectTip())).code).toBe('CONFLICT');
  });
});

describe('parseBlock on real blocks', () => {
  let raw: Uint8Array;
  let hash: string;

  beforeAll(async () => {
    // A block with a coinbase and two witness transactions.
    await node.fund(freshKey().script, 10_000n);
    await node.fund(freshKey().script, 20_000n);
    await node.mine(1);
    hash = await node.rpc.getBlockHash(await node.rpc.getBlockCount());
    raw = await node.rpc.getBlockRaw(hash);
  });

  it('yields the hash, previous hash and txids the node reports', async () => {
    const block = parseBlock(raw);
    const json = await node.rpc.call<{ tx: string[]; previousblockhash: string; merkleroot: string }>(
      'getblock',
      [hash, true],
    );
    expect(block.hash).toBe(hash);
    expect(block.prevHash).toBe(json.previousblockhash);
    expect(block.merkleRoot).toBe(json.merkleroot);
    expect(block.txs.map((t) => t.txid)).toEqual(json.tx);
    expect(block.txs).toHaveLength(3);
    for (const t of block.txs) {
      expect(t.tx.id).toBe(t.txid);
      expect(toHex(t.tx.toBytes(true, true))).toBe(toHex(t.raw));
    }
    // Witness transactions: the txid is of the serialization without witness.
    expect(block.txs[1]!.raw.length).toBeGreaterThan(block.txs[1]!.tx.toBytes(true, false).length);
  });

  it('refuses every truncation', () => {
    for (let n = 0; n < raw.length; n++) {
      let code: string | undefined;
      try {
        parseBlock(raw.subarray(0, n));
      } catch (err) {
        if (err instanceof CustosError) code = err.code;
      }
      expect(code, `prefix of ${n} bytes`).toBe('INVALID_VALUE');
    }
  });

  it('refuses trailing bytes', async () => {
    const err = await caught(() => parseBlock(Uint8Array.of(...raw, 0)));
    expect(err.code).toBe('TRAILING_DATA');
    const tx = parseBlock(raw).txs[1]!.raw;
    expect((await caught(() => parseTransaction(Uint8Array.of(...tx, 0)))).code).toBe('TRAILING_DATA');
  });

  it('refuses a non-minimal transaction count', async () => {
    expect(raw[80]).toBe(3);
    const bad = Uint8Array.of(...raw.subarray(0, 80), 0xfd, 0x03, 0x00, ...raw.subarray(81));
    expect((await caught(() => parseBlock(bad))).code).toBe('NON_CANONICAL_ENCODING');
  });

  it('refuses a transaction changed under the merkle root', async () => {
    // The 10 000 sat output of the first funding transaction: amount (8 bytes LE), then a 22-byte script.
    const at = Buffer.from(raw).indexOf(Buffer.from('102700000000000016', 'hex'));
    expect(at).toBeGreaterThan(80);
    const bad = raw.slice();
    bad[at + 1] = 0x28;
    const err = await caught(() => parseBlock(bad));
    expect(err.code).toBe('INVALID_VALUE');
    expect(err.message).toMatch(/merkle root/);
  });

  it('refuses the CVE-2012-2459 mutation (last transaction repeated, same merkle root)', async () => {
    const last = parseBlock(raw).txs[2]!.raw;
    const mutated = Uint8Array.of(...raw.subarray(0, 80), 4, ...raw.subarray(81), ...last);
    const err = await caught(() => parseBlock(mutated));
    expect(err.message).toMatch(/CVE-2012-2459/);
  });

  it('refuses a witness flag with no witness, and an unknown flag', async () => {
    const { tx } = parseBlock(raw).txs[1]!;
    const stripped = tx.toBytes(true, false);
    const inputs = tx.inputsLength;
    const withFlag = (flag: number, witness: number[]) =>
      Uint8Array.of(
        ...stripped.subarray(0, 4),
        0,
        flag,
        ...stripped.subarray(4, -4),
        ...witness,
        ...stripped.subarray(-4),
      );
    const empty = new Array<number>(inputs).fill(0);
    expect((await caught(() => parseTransaction(withFlag(1, empty)))).code).toBe('NON_CANONICAL_ENCODING');
    expect((await caught(() => parseTransaction(withFlag(2, empty)))).code).toBe('INVALID_VALUE');
  });
});

describe('BitcoinRpc errors', () => {
  let fake: Server;
  let fakePort = 0;
  let answer: (body: { id: number; method: string; params: unknown[] }) => string | null = () => null;

  beforeAll(async () => {
    // A misbehaving node: answers whatever `answer` returns, or never answers when it returns null.
    fake = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = answer(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        if (text !== null) res.writeHead(200, { 'content-type': 'application/json' }).end(text);
      });
    });
    fakePort = await listen(fake);
  });

  afterAll(async () => {
    await closeServer(fake);
  });

  it('a wrong password is UNAVAILABLE and the password appears nowhere in the error', async () => {
    const password = 'Wr0ng-Pa55word-4f9d1c';
    const rpc = new BitcoinRpc({ url: node.rpcUrl, username: node.rpcUser, password });
    const err = await caught(() => rpc.getBlockCount());
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.details.httpStatus).toBe(401);
    expect(err.message).not.toContain(password);
    expect(JSON.stringify(err.toJSON())).not.toContain(password);
    expect(String(err.stack)).not.toContain(password);
  });

  it('credentials in the URL are used, then kept out of messages', async () => {
    const port = new URL(node.rpcUrl).port;
    const good = new BitcoinRpc({ url: `http://${node.rpcUser}:${node.rpcPassword}@127.0.0.1:${port}/` });
    expect(await good.getBlockCount()).toBeGreaterThan(0);
    expect(good.origin).toBe(`http://127.0.0.1:${port}`);
    const secret = 's3cret-in-url-77';
    const bad = new BitcoinRpc({ url: `http://${node.rpcUser}:${secret}@127.0.0.1:${port}/` });
    const err = await caught(() => bad.getBlockCount());
    expect(err.code).toBe('UNAVAILABLE');
    expect(JSON.stringify({ m: err.message, d: err.details, c: String(err.cause) })).not.toContain(secret);
  });

  it('a closed port is UNAVAILABLE', async () => {
    const probe = createServer();
    const port = await listen(probe);
    await closeServer(probe);
    const rpc = new BitcoinRpc({
      url: `http://127.0.0.1:${port}/`,
      username: 'u',
      password: 'pw-closed-port',
    });
    const err = await caught(() => rpc.getBlockCount());
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/unreachable/);
    expect(err.message).not.toContain('pw-closed-port');
  });

  it('a node that does not answer in time is UNAVAILABLE', async () => {
    answer = () => null;
    const rpc = new BitcoinRpc({ url: `http://127.0.0.1:${fakePort}/`, timeoutMs: 200 });
    const err = await caught(() => rpc.getBlockCount());
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/did not answer getblockcount within 200 ms/);
  });

  it('answers of the wrong shape are UNAVAILABLE, not passed on', async () => {
    const rpc = new BitcoinRpc({ url: `http://127.0.0.1:${fakePort}/` });
    const cases: [(b: { id: number }) => string, () => Promise<unknown>, RegExp][] = [
      [() => 'not json', () => rpc.getBlockCount(), /no JSON/],
      [
        (b) => JSON.stringify({ id: b.id, result: -1, error: null }),
        () => rpc.getBlockCount(),
        /not a block height/,
      ],
      [
        (b) => JSON.stringify({ id: b.id + 1, result: 1, error: null }),
        () => rpc.getBlockCount(),
        /another request/,
      ],
      [(b) => JSON.stringify({ id: b.id, result: 'zz', error: null }), () => rpc.getBlockHash(1), /hex hash/],
      [(b) => JSON.stringify({ id: b.id, result: [1], error: null }), () => rpc.getRawMempool(), /hex hash/],
      [
        (b) => JSON.stringify({ id: b.id, result: { fee: 'x' }, error: null }),
        () => rpc.estimateFeeRate(2),
        /fee rate/,
      ],
      [
        (b) => JSON.stringify({ id: b.id, error: null }),
        () => rpc.getBlockCount(),
        /not a JSON-RPC response/,
      ],
    ];
    for (const [reply, call, message] of cases) {
      answer = reply;
      const err = await caught(call);
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toMatch(message);
    }
  });

  it('a block other than the one asked for is refused', async () => {
    const genesis = await node.rpc.getBlockHash(0);
    const genesisHex = toHex(await node.rpc.getBlockRaw(genesis));
    answer = (b) => JSON.stringify({ id: b.id, result: genesisHex, error: null });
    const rpc = new BitcoinRpc({ url: `http://127.0.0.1:${fakePort}/` });
    expect(toHex(await rpc.getBlockRaw(genesis))).toBe(genesisHex);
    const err = await caught(() => rpc.getBlockRaw('11'.repeat(32)));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/not the one asked for/);
  });

  it('maps node errors: height past the tip is INVALID_VALUE, an unknown method UNAVAILABLE', async () => {
    const tip = await node.rpc.getBlockCount();
    const past = await caught(() => node.rpc.getBlockHash(tip + 1));
    expect(past.code).toBe('INVALID_VALUE');
    expect(past.details.rpcCode).toBe(-8);
    const unknown = await caught(() => node.rpc.call('nosuchmethod', []));
    expect(unknown.code).toBe('UNAVAILABLE');
    expect(unknown.details.rpcCode).toBe(-32601);
  });

  it('estimatesmartfee without an estimate (regtest) is null; bytes that are not a transaction are refused', async () => {
    expect(await node.rpc.estimateFeeRate(6)).toBeNull();
    expect((await caught(() => node.rpc.sendRawTransaction('00'))).code).toBe('INVALID_VALUE');
    expect(fromHex('00')).toEqual(Uint8Array.of(0));
  });
});
