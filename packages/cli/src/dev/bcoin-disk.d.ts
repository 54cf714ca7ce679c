/**
 * What `custos dev` uses of bcoin beyond the declarations in
 * packages/bitcoin/src/bcoin.d.ts: the on-disk chain (`prefix`, `ensure`).
 * Declaration merging, so the two stay one module type.
 */
import 'bcoin';

declare module 'bcoin' {
  interface FullNodeOptions {
    /** The data directory of an on-disk node (`memory: false`); bcoin adds the network name. */
    prefix?: string;
  }
  interface FullNode {
    /** Creates the prefix directory. */
    ensure(): Promise<void>;
  }
}
