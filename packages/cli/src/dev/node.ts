/**
 * The Bitcoin regtest node of `custos dev`: the same in-process bcoin node the
 * tests use (@custos/bitcoin/regtest: 127.0.0.1 only, no P2P, no seeds, and
 * sendrawtransaction answering as Bitcoin Core does), with its chain on disk
 * in the state folder, so a restart finds the same blocks, coins and
 * transactions the coordinator and the signers remember. Rebuilding a chain
 * on every start could not reproduce the block hashes the coordinator's
 * wallet scanner and the signers' receipts refer to.
 *
 * Development only: the RPC key is random per start; `custos dev` writes it
 * to secrets/node-rpc.password (0600) for the watcher's own RPC connection.
 */
import type { BitcoinRpc } from '@custos/bitcoin';
import { startRegtestNode } from '@custos/bitcoin/regtest';

export interface DevNode {
  readonly rpcUrl: string;
  readonly rpcUser: string;
  readonly rpcPassword: string;
  readonly rpc: BitcoinRpc;
  height(): number;
  /** Mines `n` blocks whose coinbase pays `script` (P2WSH, P2WPKH...). */
  mineTo(script: Uint8Array, n: number): Promise<void>;
  /** Mines `n` blocks (their rewards go to the node's own in-memory key). */
  mine(n: number): Promise<void>;
  /** Sends `value` sat to `script` from the node's own mined coins (in the mempool until a block). */
  fund(script: Uint8Array, value: bigint): Promise<void>;
  /** Transactions waiting in the mempool. */
  mempoolSize(): Promise<number>;
  /** Mines until BIP 141 segwit is active for the next block (431 blocks from the genesis on regtest). */
  activateSegwit(): Promise<void>;
  close(): Promise<void>;
}

export async function startDevNode(opts: { dir: string }): Promise<DevNode> {
  const node = await startRegtestNode({ prefix: opts.dir });
  return {
    rpcUrl: node.rpcUrl,
    rpcUser: node.rpcUser,
    rpcPassword: node.rpcPassword,
    rpc: node.rpc,
    height: () => node.height(),
    mineTo: async (script, n) => {
      await node.mineToScript(script, n);
    },
    mine: (n) => node.mine(n),
    fund: async (script, value) => {
      await node.fund(script, value);
    },
    mempoolSize: async () => (await node.rpc.getRawMempool()).length,
    activateSegwit: () => node.activateSegwit(),
    close: () => node.close(),
  };
}
