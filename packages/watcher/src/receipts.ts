/**
 * What the signers signed, from their own signatures (issue 12). The audit
 * log says which intent a transaction was built for and that a signer
 * answered, but the coordinator writes it: a thief who holds the keys and
 * the coordinator (or its database, or a relay in front of it, the DMM
 * Bitcoin path) could write entries that make a theft look approved. So the
 * audit log is only an index here. A spend is explained when the signers'
 * receipts for that intent (`GET /v1/intents/:id/receipts`, exactly as they
 * posted them) include, from distinct governed signers, at least the
 * wallet's threshold of receipts that are signed by each signer's identity
 * key in the watcher's own verified governance, say `signed`, name the
 * intent, and name the transaction: the Bitcoin txid, or the Safe's
 * safeTxHash. Anything less is unexplained.
 *
 * Pure: the caller fetches the receipts and passes its governance state.
 */
import { networkOfChain, parseDescriptor, type WalletDescriptor } from '@custos/bitcoin';
import {
  fromHex,
  type GovernanceState,
  isBitcoinWallet,
  isSafeWallet,
  primitives,
  receiptDigest,
  receipt as receiptSchema,
  schema,
  verifyEd25519,
} from '@custos/core';

/** The body of `GET /v1/intents/:id/receipts`, read strictly: a page the watcher cannot read explains nothing. */
export const receiptsPage = schema.object({
  receipts: schema.array(schema.object({ receipt: receiptSchema, signature: primitives.hexBytes(64) }), {
    max: 1000,
  }),
});
export type ReceiptsPage = schema.Infer<typeof receiptsPage>;

/**
 * How many distinct signers must have signed for a spend of these wallets to
 * be explained: the largest threshold among them (a Bitcoin descriptor's m,
 * a Safe's threshold). A wallet governance does not name, or a descriptor
 * that does not parse, needs more signers than exist: nothing explains it.
 */
export function signaturesNeeded(state: GovernanceState, wallets: readonly string[]): number {
  let needed = 1;
  for (const id of wallets) {
    const w = state.wallets.get(id);
    if (w === undefined) return Number.POSITIVE_INFINITY;
    if (isSafeWallet(w)) {
      needed = Math.max(needed, w.threshold);
    } else if (isBitcoinWallet(w)) {
      const d = descriptorOf(w.descriptor, w.chain);
      if (d === undefined) return Number.POSITIVE_INFINITY;
      needed = Math.max(needed, d.m);
    }
  }
  return needed;
}

const descriptors = new Map<string, WalletDescriptor | undefined>();

function descriptorOf(text: string, chain: string): WalletDescriptor | undefined {
  const key = `${chain} ${text}`;
  if (!descriptors.has(key)) {
    const network = networkOfChain(chain);
    const parsed = network === undefined ? undefined : parseDescriptor(text, network);
    descriptors.set(key, parsed?.ok === true ? parsed.value : undefined);
  }
  return descriptors.get(key);
}

/**
 * The governed signers whose receipts in `page` say they signed `txid` for
 * `intent`, each counted once, in order of first appearance; receipts that
 * do not verify, name another transaction or intent, or refused, are left
 * out (`rejected` counts them, for the log).
 */
export function signersOf(
  state: GovernanceState,
  page: ReceiptsPage,
  intent: string,
  txid: string,
): { readonly signers: readonly string[]; readonly rejected: number } {
  const signers: string[] = [];
  let rejected = 0;
  for (const { receipt, signature } of page.receipts) {
    if (receipt.outcome !== 'signed' || receipt.txid !== txid || receipt.intent !== intent) continue;
    const key = state.signers.get(receipt.signer)?.publicKey;
    if (key === undefined || !verifyEd25519(key, fromHex(receiptDigest(receipt)), signature)) {
      rejected++;
      continue;
    }
    if (!signers.includes(receipt.signer)) signers.push(receipt.signer);
  }
  return { signers, rejected };
}
