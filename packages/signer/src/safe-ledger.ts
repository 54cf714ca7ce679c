/**
 * The Safe nonces this signer signed (issue 9): one row per (chain, Safe,
 * nonce) with the safeTxHash and the intent, in the signer's own SQLite file,
 * written in the same transaction as the ledger row, so it is on disk before
 * the signature leaves the process (THREATS 32).
 *
 * Why a table of its own: a Safe executes at most one transaction per nonce,
 * and an owner signature for a nonce is valid forever. Two different SafeTxs
 * signed for one nonce would let whoever holds both signatures choose which
 * one executes; the primary key makes a second row for a nonce impossible
 * even if a decision were wrong. The next nonce this signer accepts is the
 * highest it signed plus one (or the Safe's on-chain nonce when that is
 * higher: another owner set executed meanwhile).
 */
import type Database from 'better-sqlite3';
import type { SignedNonce } from './evm-decision.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS safe_nonces (
  chain TEXT NOT NULL,
  safe TEXT NOT NULL,
  nonce INTEGER NOT NULL,
  safe_tx_hash TEXT NOT NULL UNIQUE,
  intent TEXT NOT NULL UNIQUE,
  at INTEGER NOT NULL,
  PRIMARY KEY (chain, safe, nonce)
) STRICT;
`;

export interface SafeNonceRow {
  readonly chain: string;
  readonly safe: string;
  readonly nonce: bigint;
  readonly safeTxHash: string;
  readonly intent: string;
  readonly at: number;
}

export class SafeNonceLedger {
  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
  }

  /** The highest nonce signed for this Safe plus one; 0 when none. */
  nextNonce(chain: string, safe: string): bigint {
    const row = this.db
      .prepare('SELECT max(nonce) AS n FROM safe_nonces WHERE chain = ? AND safe = ?')
      .get(chain, safe) as { n: number | null };
    return row.n === null ? 0n : BigInt(row.n) + 1n;
  }

  /** What was signed at `nonce` of this Safe, if anything (a nonce beyond 2^53 never was). */
  signedAt(chain: string, safe: string, nonce: bigint): SignedNonce | null {
    if (nonce > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const row = this.db
      .prepare(
        'SELECT intent, safe_tx_hash AS safeTxHash FROM safe_nonces WHERE chain = ? AND safe = ? AND nonce = ?',
      )
      .get(chain, safe, Number(nonce)) as SignedNonce | undefined;
    return row ?? null;
  }

  /** Records a signed nonce; call inside the decision's transaction. Throws on a second row for a nonce. */
  insert(row: SafeNonceRow): void {
    if (row.nonce > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('a Safe nonce beyond 2^53');
    this.db
      .prepare(
        'INSERT INTO safe_nonces (chain, safe, nonce, safe_tx_hash, intent, at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(row.chain, row.safe, Number(row.nonce), row.safeTxHash, row.intent, row.at);
  }

  all(): SafeNonceRow[] {
    return (
      this.db
        .prepare(
          'SELECT chain, safe, nonce, safe_tx_hash AS safeTxHash, intent, at FROM safe_nonces ORDER BY chain, safe, nonce',
        )
        .all() as (Omit<SafeNonceRow, 'nonce'> & { nonce: number })[]
    ).map((r) => ({ ...r, nonce: BigInt(r.nonce) }));
  }
}
