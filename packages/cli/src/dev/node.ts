/**
 * The Bitcoin regtest node of `custos dev`: bcoin, in this process, with its
 * chain on disk in the state folder so a restart finds the same blocks, the
 * same coins and the same transactions the coordinator and the signers
 * remember.
 *
 * Why not @custos/bitcoin/regtest's startRegtestNode: it keeps the chain in
 * memory (right for tests, where every run starts clean). bcoin's on-disk
 * mode (`memory: false` with a `prefix`) works here with leveldown 6.1.1
 * (checked: a chain of blocks mined, closed, reopened at the same height), so
 * the development deployment uses it rather than rebuilding a chain on every
 * start, which could not reproduce the block hashes the coordinator's wallet
 * scanner and the signers' receipts refer to. The node is configured exactly
 * as regtest.ts does (127.0.0.1 only, no P2P, no seeds) and answers
 * sendrawtransaction as Bitcoin Core does (an error for a refused
 * transaction instead of bcoin's fire-and-forget txid), so the coordinator
 * sees what a production node would say.
 *
 * Development only: the RPC key is random per start and never written down.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { BitcoinRpc, scriptToAddress } from '@custos/bitcoin';
import { CustosError, sha256, toHex } from '@custos/core';
import type * as Bcoin from 'bcoin';

const require = createRequire(import.meta.url);

/** bcoin accepts any RPC user name; the API key is the password. */
const RPC_USER = 'custos';
/** Bitcoin Core's RPC error codes (src/rpc/protocol.h). */
const RPC_MISC_ERROR = -1;
const RPC_DESERIALIZATION_ERROR = -22;
const RPC_VERIFY_ERROR = -25;
const RPC_VERIFY_REJECTED = -26;
const RPC_VERIFY_ALREADY_IN_CHAIN = -27;

export interface DevNode {
  readonly rpcUrl: string;
  readonly rpcUser: string;
  readonly rpcPassword: string;
  readonly rpc: BitcoinRpc;
  height(): number;
  /** Mines `n` blocks whose coinbase pays `script` (P2WSH, P2WPKH...). */
  mineTo(script: Uint8Array, n: number): Promise<void>;
  /** Mines `n` blocks to the development miner's throwaway address. */
  mine(n: number): Promise<void>;
  /** Transactions waiting in the mempool. */
  mempoolSize(): Promise<number>;
  /** Mines until BIP 141 segwit is active for the next block (431 blocks from the genesis on regtest). */
  activateSegwit(): Promise<void>;
  close(): Promise<void>;
}

/** A P2WPKH script whose key nobody holds: where the development blocks' own rewards go. */
const MINER_SCRIPT = new Uint8Array([
  0x00,
  0x14,
  ...sha256(new TextEncoder().encode('custos dev miner')).slice(0, 20),
]);

export async function startDevNode(opts: { dir: string }): Promise<DevNode> {
  const bcoin = require('bcoin') as typeof Bcoin;
  const apiKey = randomBytes(24).toString('hex');
  const node = new bcoin.FullNode({
    network: 'regtest',
    memory: false,
    prefix: opts.dir,
    workers: false,
    listen: false,
    seeds: [],
    httpHost: '127.0.0.1',
    httpPort: 0,
    apiKey,
    logLevel: 'none',
  });
  await node.ensure();
  await node.open();
  try {
    await node.connect();
    installCoreSendRawTransaction(bcoin, node);
  } catch (err) {
    await node.close();
    throw err;
  }
  const rpcUrl = `http://127.0.0.1:${node.http.address().port}/`;
  const rpc = new BitcoinRpc({ url: rpcUrl, username: RPC_USER, password: apiKey });

  // Mining touches the chain tip: one operation at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(op: () => Promise<T>): Promise<T> => {
    const next = queue.then(op, op);
    queue = next.catch(() => undefined);
    return next;
  };
  let closed = false;

  const addressOf = (script: Uint8Array): Bcoin.Address => {
    const address = bcoin.Address.fromScript(bcoin.Script.fromRaw(Buffer.from(script)));
    if (address === null) {
      throw new CustosError(
        'INVALID_VALUE',
        `cannot mine to ${scriptToAddress(script, 'regtest') ?? toHex(script)}`,
      );
    }
    return address;
  };
  const mineTo = async (script: Uint8Array, n: number): Promise<void> => {
    if (closed) throw new CustosError('UNAVAILABLE', 'the regtest node is closed');
    const address = addressOf(script);
    for (let i = 0; i < n; i++) {
      const block = await node.miner.mineBlock(node.chain.tip, address);
      if ((await node.chain.add(block)) === null) {
        throw new CustosError('INTERNAL', 'the regtest node refused a block it mined');
      }
    }
  };

  return {
    rpcUrl,
    rpcUser: RPC_USER,
    rpcPassword: apiKey,
    rpc,
    height: () => node.chain.height,
    mineTo: (script, n) => serialize(() => mineTo(script, n)),
    mine: (n) => serialize(() => mineTo(MINER_SCRIPT, n)),
    mempoolSize: async () => {
      const info = await rpc.call<{ size?: unknown }>('getmempoolinfo', []);
      return typeof info.size === 'number' ? info.size : 0;
    },
    activateSegwit: () =>
      serialize(async () => {
        for (let i = 0; i < 4 * 144 && !node.chain.state.hasWitness(); i++) await mineTo(MINER_SCRIPT, 1);
        if (!node.chain.state.hasWitness())
          throw new CustosError('INTERNAL', 'segwit did not activate on regtest');
      }),
    close: () =>
      serialize(async () => {
        if (closed) return;
        closed = true;
        await node.close();
      }),
  };
}

function rpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { type: 'RPCError', code });
}

function isVerifyError(err: unknown): err is Bcoin.VerifyErrorLike {
  return (
    typeof err === 'object' && err !== null && 'type' in err && err.type === 'VerifyError' && 'reason' in err
  );
}

/**
 * Bitcoin Core's sendrawtransaction (src/rpc/mempool.cpp): the txid once the
 * mempool holds the transaction, else an error with Core's code and the
 * reject reason. The same replacement regtest.ts installs on its test node.
 */
function installCoreSendRawTransaction(bcoin: typeof Bcoin, node: Bcoin.FullNode): void {
  const calls = node.rpc.calls;
  if (typeof calls.sendrawtransaction !== 'function') {
    throw new Error('BUG: bcoin has no sendrawtransaction handler to replace');
  }
  calls.sendrawtransaction = async (params: unknown[]) => {
    const hex = params[0];
    if (params.length < 1 || params.length > 2 || typeof hex !== 'string') {
      throw rpcError(RPC_MISC_ERROR, 'sendrawtransaction "hexstring" ( maxfeerate )');
    }
    let tx: Bcoin.TX;
    try {
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw new Error('not hex');
      tx = bcoin.TX.fromRaw(Buffer.from(hex, 'hex'));
    } catch {
      throw rpcError(RPC_DESERIALIZATION_ERROR, 'TX decode failed');
    }
    if (node.mempool.hasEntry(tx.hash('hex'))) return tx.txid();
    let missing: string[] | null;
    try {
      missing = await node.mempool.addTX(tx);
    } catch (err) {
      if (!isVerifyError(err)) throw err;
      if (err.reason === 'txn-already-known') {
        throw rpcError(RPC_VERIFY_ALREADY_IN_CHAIN, 'Transaction outputs already in utxo set');
      }
      throw rpcError(RPC_VERIFY_REJECTED, err.reason);
    }
    if (missing !== null && missing.length > 0) {
      node.mempool.removeOrphan(tx.hash('hex'));
      throw rpcError(RPC_VERIFY_ERROR, 'bad-txns-inputs-missingorspent');
    }
    return tx.txid();
  };
}
