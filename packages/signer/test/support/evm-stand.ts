/**
 * An EVM Safe world for signer process tests (issue 9): the fixture
 * organization with two governed Safes 1.4.1 deployed on a real local chain
 * (Hardhat, `startEvmChain`), whose owners are two real signer processes'
 * keystore EVM keys and a backup key; the ETH and the 6-decimal token in the
 * asset registry; one address-book payee; intents and approvals signed by
 * the members' devices; jobs whose `safeTx` is whatever a test (or an
 * attacker in the coordinator) proposes. Each signer's config names the
 * chain's node as its own trusted node.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '@custos/core';
import Database from 'better-sqlite3';

export {
  ETH,
  type EvmWorld,
  fromJobSafeTx,
  keystoreEvmAddress,
  makeEvmWorld,
  toJobSafeTx,
} from '@custos/test-support/evm-world';

/** A signer config whose trusted node for the chain is `rpcUrl` (the coordinator never names it). */
export function writeEvmConfig(
  dir: string,
  id: string,
  coordinatorUrl: string,
  genesis: string,
  evm: Record<string, { rpcUrl: string }>,
): string {
  const file = join(dir, `${id}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      id,
      coordinatorUrl,
      genesis,
      keystore: `${id}.key`,
      database: `${id}.db`,
      chains: ['bitcoin:regtest'],
      waitMs: 200,
      evm,
    }),
  );
  return file;
}

/** What the signer's own file says about an intent and the Safe nonces, read while it runs (WAL readers). */
export function ledgerOf(dir: string, id: string, intent: Digest): { rows: number; safeNonces: number } {
  const db = new Database(join(dir, `${id}.db`), { readonly: true, fileMustExist: true });
  try {
    const rows = (
      db.prepare('SELECT count(*) AS n FROM ledger WHERE intent = ?').get(intent) as { n: number }
    ).n;
    const safeNonces = (db.prepare('SELECT count(*) AS n FROM safe_nonces').get() as { n: number }).n;
    return { rows, safeNonces };
  } finally {
    db.close();
  }
}
