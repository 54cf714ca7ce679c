/**
 * The few parts of bcoin 1.0.2 that regtest.ts uses. bcoin ships no types and
 * there is no @types package; this declares only what is called, as bcoin's
 * own JSDoc in node_modules/bcoin/lib describes it. In bcoin 1.0.2 hashes
 * used as keys (mempool, coins) are hex strings in internal byte order;
 * `rhash()`/`txid()` give the reversed display hex.
 */
declare module 'bcoin' {
  export interface FullNodeOptions {
    network: 'regtest';
    memory: boolean;
    /** The data directory of an on-disk node (`memory: false`); bcoin adds the network name. */
    prefix?: string;
    workers: boolean;
    listen: boolean;
    /** Peers to dial first; regtest's default is 127.0.0.1:48444. */
    seeds: string[];
    httpHost: string;
    httpPort: number;
    apiKey: string;
    logLevel: 'none' | 'error' | 'warning' | 'info' | 'debug' | 'spam';
  }

  export interface Script {
    toRaw(): Buffer;
  }
  export const Script: {
    fromRaw(raw: Buffer): Script;
  };

  export interface Address {
    toString(): string;
  }
  export const Address: {
    /** Null when the script is not one an address can spell. */
    fromScript(script: Script): Address | null;
  };

  export interface TX {
    /** Internal byte order. */
    hash(enc: 'hex'): string;
    /** Display hex. */
    txid(): string;
    toRaw(): Buffer;
    readonly outputs: readonly { readonly value: number }[];
    /** Outpoints spent; `hash` is hex in internal byte order. */
    readonly inputs: readonly { readonly prevout: { readonly hash: string; readonly index: number } }[];
    getVirtualSize(): number;
  }
  export const TX: {
    fromRaw(raw: Buffer): TX;
  };

  export class Block {
    readonly txs: readonly TX[];
    rhash(): string;
  }

  export interface ChainEntry {
    readonly height: number;
    rhash(): string;
  }

  export interface Chain {
    readonly tip: ChainEntry;
    readonly height: number;
    /** Deployment state for the next block. */
    readonly state: { hasWitness(): boolean };
    add(block: Block): Promise<ChainEntry | null>;
    getPrevious(entry: ChainEntry): Promise<ChainEntry | null>;
    /** 'connect' (entry, block) for every block made part of the main chain, 'disconnect' (entry, block) on a reorg. */
    on(event: 'connect' | 'disconnect', listener: (entry: ChainEntry, block: Block) => void): void;
    removeListener(
      event: 'connect' | 'disconnect',
      listener: (entry: ChainEntry, block: Block) => void,
    ): void;
    /** An unspent output of the chain's UTXO set (hash hex, internal byte order), or null. */
    getCoin(hash: string, index: number): Promise<Coin | null>;
  }

  export interface Miner {
    mineBlock(tip: ChainEntry | null, address: Address): Promise<Block>;
    /** Where block templates take transactions from; null: empty blocks. */
    mempool: Mempool | null;
  }

  export interface VerifyErrorLike {
    readonly type: 'VerifyError';
    readonly reason: string;
  }

  export interface Mempool {
    /** Resolves to the missing parent hashes when the transaction was kept as an orphan, else null. */
    addTX(tx: TX): Promise<string[] | null>;
    hasEntry(hash: string): boolean;
    removeOrphan(hash: string): boolean;
    /** The mempool entry spending an outpoint (hash in internal byte order), if any. */
    getSpent(hash: string, index: number): MempoolEntry | undefined;
    /** Every in-mempool descendant of an entry. */
    getDescendants(entry: MempoolEntry): MempoolEntry[];
    /** Removes an entry and, recursively, its spenders. */
    evictEntry(entry: MempoolEntry): void;
    /** 'tx' for every transaction the mempool accepts. */
    on(event: 'tx', listener: (tx: TX) => void): void;
    removeListener(event: 'tx', listener: (tx: TX) => void): void;
  }

  export interface MempoolEntry {
    readonly tx: TX;
    /** Fee in satoshi. */
    readonly fee: number;
    /** Virtual size (sigop-adjusted). */
    readonly size: number;
  }

  export interface NodeRpc {
    /** The method table bweb's RPC dispatches on: name -> handler(params). */
    readonly calls: Record<string, (params: unknown[], help?: boolean) => Promise<unknown>>;
  }

  export interface Coin {
    readonly value: number;
  }

  export class FullNode {
    constructor(options: FullNodeOptions);
    readonly chain: Chain;
    readonly miner: Miner;
    readonly mempool: Mempool;
    readonly rpc: NodeRpc;
    readonly http: { address(): { address: string; port: number } };
    /** Creates the prefix directory of an on-disk node. */
    ensure(): Promise<void>;
    open(): Promise<void>;
    /** Starts the P2P pool; without it a chain reset (invalidateblock) throws in the pool's handler. */
    connect(): Promise<void>;
    close(): Promise<void>;
    /** Mempool first (null if spent there), then the chain's UTXO set. */
    getCoin(hash: string, index: number): Promise<Coin | null>;
  }
}
