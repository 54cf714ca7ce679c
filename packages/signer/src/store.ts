/**
 * The signer's own SQLite file (DESIGN.md "Storage"): governance entries with
 * the time this signer first saw each, its signing ledger, its decisions and
 * its freeze state. Nothing here comes from the coordinator's database; every
 * row was verified by this process before it was written.
 *
 * Durability: WAL with synchronous=FULL, so a committed transaction survives
 * power loss. The signer commits the ledger row (with the signatures it made)
 * before any signature leaves the process; if it dies after the commit, the
 * same job asked again gets the same stored answer, and no other transaction
 * can ever be signed for that intent (THREATS 32, 14).
 */

import { claimedChangeIndex, psbtFromBase64 } from '@custos/bitcoin/sign';
import {
  canonicalize,
  type Digest,
  decode,
  type LedgerEntry,
  type SignedGovernanceEntry,
  type SignerResult,
  signedGovernanceEntry,
  signerResult,
} from '@custos/core';
import Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS governance (
  seq INTEGER PRIMARY KEY,
  digest TEXT NOT NULL,
  entry TEXT NOT NULL,
  seen_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS ledger (
  intent TEXT PRIMARY KEY,
  txid TEXT NOT NULL UNIQUE,
  wallet TEXT NOT NULL,
  asset TEXT NOT NULL,
  amount TEXT NOT NULL,
  destination TEXT NOT NULL,
  requester TEXT NOT NULL,
  at INTEGER NOT NULL,
  job TEXT NOT NULL,
  result TEXT NOT NULL,
  change_index INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job TEXT NOT NULL,
  intent TEXT,
  outcome TEXT NOT NULL,
  code TEXT,
  at INTEGER NOT NULL,
  result TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
  seq INTEGER PRIMARY KEY,
  head TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS freeze (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  code TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS equivocations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  known_seq INTEGER NOT NULL,
  known_digest TEXT NOT NULL,
  known_entry TEXT NOT NULL,
  other_seq INTEGER NOT NULL,
  other_digest TEXT NOT NULL,
  other_entry TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
`;

/** Columns added to the freeze table after its first release (older files are migrated at open). */
const FREEZE_COLUMNS: readonly [string, string][] = [
  ['governance_seq', 'INTEGER'],
  ['evidence', 'INTEGER'],
];

export interface StoredGovernance {
  readonly signed: SignedGovernanceEntry;
  readonly digest: Digest;
  readonly seenAt: number;
}

export interface LedgerRow extends LedgerEntry {
  readonly txid: string;
  readonly job: string;
  readonly result: SignerResult;
  /** The change-branch index the signed transaction pays change to; null without change. */
  readonly changeIndex?: number | null;
}

export interface LocalFreeze {
  readonly code: string;
  readonly reason: string;
  readonly at: number;
  /** This signer's governance seq when it froze: only an unfreeze applied after it clears the freeze. */
  readonly governanceSeq: number | null;
  /** The equivocation that proved the fork (id in the evidence table), if that is why. */
  readonly evidence: number | null;
}

/**
 * Proof of a governance equivocation: two entries, each quorum-signed by the
 * admins of this signer's verified state before it, that cannot both be in
 * one chain (another digest for a seq this signer applied, or a successor
 * whose `prev` is not this signer's entry). Both are kept whole.
 */
export interface Equivocation {
  readonly id: number;
  readonly known: StoredEvidence;
  readonly other: StoredEvidence;
  readonly at: number;
}

export interface StoredEvidence {
  readonly seq: number;
  readonly digest: Digest;
  readonly signed: SignedGovernanceEntry;
}

export class SignerStore {
  readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    migrateLedgerChange(this.db);
    const have = new Set(
      (this.db.prepare('PRAGMA table_info(freeze)').all() as { name: string }[]).map((c) => c.name),
    );
    for (const [name, type] of FREEZE_COLUMNS) {
      if (!have.has(name)) this.db.exec(`ALTER TABLE freeze ADD COLUMN ${name} ${type}`);
    }
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction: one decision at a time, even across processes. */
  exclusive<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  governance(): StoredGovernance[] {
    const rows = this.db.prepare('SELECT digest, entry, seen_at FROM governance ORDER BY seq').all() as {
      digest: string;
      entry: string;
      seen_at: number;
    }[];
    return rows.map((r) => ({
      signed: decode(signedGovernanceEntry, r.entry),
      digest: r.digest as Digest,
      seenAt: r.seen_at,
    }));
  }

  governanceDigestAt(seq: number): Digest | null {
    const row = this.db.prepare('SELECT digest FROM governance WHERE seq = ?').get(seq) as
      | { digest: string }
      | undefined;
    return row === undefined ? null : (row.digest as Digest);
  }

  insertGovernance(signed: SignedGovernanceEntry, digest: Digest, seenAt: number): void {
    this.db
      .prepare('INSERT INTO governance (seq, digest, entry, seen_at) VALUES (?, ?, ?, ?)')
      .run(signed.entry.seq, digest, canonicalize(signed), seenAt);
  }

  ledgerFor(intent: Digest): LedgerRow | null {
    const row = this.db.prepare('SELECT * FROM ledger WHERE intent = ?').get(intent) as RawLedger | undefined;
    return row === undefined ? null : fromRaw(row);
  }

  /** Ledger entries signed after `since` (rolling limits look back over these). */
  ledgerSince(since: number): LedgerEntry[] {
    const rows = this.db.prepare('SELECT * FROM ledger WHERE at > ? ORDER BY at').all(since) as RawLedger[];
    return rows.map((r) => toEntry(r));
  }

  ledgerCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM ledger').get() as { n: number }).n;
  }

  allLedger(): LedgerRow[] {
    return (this.db.prepare('SELECT * FROM ledger ORDER BY at, intent').all() as RawLedger[]).map(fromRaw);
  }

  insertLedger(row: LedgerRow): void {
    this.db
      .prepare(
        `INSERT INTO ledger (intent, txid, wallet, asset, amount, destination, requester, at, job, result, change_index)
         VALUES (@intent, @txid, @wallet, @asset, @amount, @to, @requester, @at, @job, @result, @changeIndex)`,
      )
      .run({ ...row, result: canonicalize(row.result), changeIndex: row.changeIndex ?? null });
  }

  /**
   * The highest change index this signer signed change to in `wallet`, -1
   * for none: its own view of the change branch used (issue 8, item 4).
   */
  highestChangeIndex(wallet: string): number {
    const row = this.db.prepare('SELECT max(change_index) AS n FROM ledger WHERE wallet = ?').get(wallet) as {
      n: number | null;
    };
    return row.n ?? -1;
  }

  insertDecision(job: string, intent: string | null, result: SignerResult): void {
    this.db
      .prepare('INSERT INTO decisions (job, intent, outcome, code, at, result) VALUES (?, ?, ?, ?, ?, ?)')
      .run(job, intent, result.receipt.outcome, result.receipt.code, result.receipt.at, canonicalize(result));
  }

  decisions(): { job: string; intent: string | null; outcome: string; code: string | null; at: number }[] {
    return this.db.prepare('SELECT job, intent, outcome, code, at FROM decisions ORDER BY id').all() as {
      job: string;
      intent: string | null;
      outcome: string;
      code: string | null;
      at: number;
    }[];
  }

  /** The audit head this signer countersigned at `seq`, if any. */
  checkpointAt(seq: number): string | null {
    const row = this.db.prepare('SELECT head FROM checkpoints WHERE seq = ?').get(seq) as
      | { head: string }
      | undefined;
    return row?.head ?? null;
  }

  insertCheckpoint(seq: number, head: string, at: number): void {
    this.db.prepare('INSERT OR IGNORE INTO checkpoints (seq, head, at) VALUES (?, ?, ?)').run(seq, head, at);
  }

  freeze(): LocalFreeze | null {
    return (
      (this.db
        .prepare(
          'SELECT code, reason, at, governance_seq AS governanceSeq, evidence FROM freeze WHERE id = 1',
        )
        .get() as LocalFreeze | undefined) ?? null
    );
  }

  /** Freezes this signer; a signer already frozen keeps its first freeze. */
  setFreeze(f: LocalFreeze): void {
    this.db
      .prepare(
        'INSERT OR IGNORE INTO freeze (id, code, reason, at, governance_seq, evidence) VALUES (1, ?, ?, ?, ?, ?)',
      )
      .run(f.code, f.reason, f.at, f.governanceSeq, f.evidence);
  }

  /** Keeps both entries of an equivocation; returns its id. */
  insertEquivocation(known: StoredEvidence, other: StoredEvidence, at: number): number {
    const r = this.db
      .prepare(
        `INSERT INTO equivocations (known_seq, known_digest, known_entry, other_seq, other_digest, other_entry, at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        known.seq,
        known.digest,
        canonicalize(known.signed),
        other.seq,
        other.digest,
        canonicalize(other.signed),
        at,
      );
    return Number(r.lastInsertRowid);
  }

  equivocations(): Equivocation[] {
    const rows = this.db.prepare('SELECT * FROM equivocations ORDER BY id').all() as {
      id: number;
      known_seq: number;
      known_digest: string;
      known_entry: string;
      other_seq: number;
      other_digest: string;
      other_entry: string;
      at: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      known: {
        seq: r.known_seq,
        digest: r.known_digest as Digest,
        signed: decode(signedGovernanceEntry, r.known_entry),
      },
      other: {
        seq: r.other_seq,
        digest: r.other_digest as Digest,
        signed: decode(signedGovernanceEntry, r.other_entry),
      },
      at: r.at,
    }));
  }

  /** The stored entry at `seq`, if any. */
  governanceAt(seq: number): StoredGovernance | null {
    const row = this.db.prepare('SELECT digest, entry, seen_at FROM governance WHERE seq = ?').get(seq) as
      | { digest: string; entry: string; seen_at: number }
      | undefined;
    return row === undefined
      ? null
      : {
          signed: decode(signedGovernanceEntry, row.entry),
          digest: row.digest as Digest,
          seenAt: row.seen_at,
        };
  }

  /** The last stored governance entry's seq and digest. */
  governanceHead(): { seq: number; digest: Digest } | null {
    const row = this.db.prepare('SELECT seq, digest FROM governance ORDER BY seq DESC LIMIT 1').get() as
      | { seq: number; digest: string }
      | undefined;
    return row === undefined ? null : { seq: row.seq, digest: row.digest as Digest };
  }

  clearFreeze(): void {
    this.db.prepare('DELETE FROM freeze WHERE id = 1').run();
  }
}

interface RawLedger {
  intent: string;
  txid: string;
  wallet: string;
  asset: string;
  amount: string;
  destination: string;
  requester: string;
  at: number;
  job: string;
  result: string;
  change_index: number | null;
}

function toEntry(r: RawLedger): LedgerEntry {
  return {
    intent: r.intent as LedgerEntry['intent'],
    wallet: r.wallet,
    asset: r.asset,
    amount: r.amount as LedgerEntry['amount'],
    to: r.destination as LedgerEntry['to'],
    requester: r.requester,
    at: r.at,
  };
}

function fromRaw(r: RawLedger): LedgerRow {
  return {
    ...toEntry(r),
    txid: r.txid,
    job: r.job,
    result: decode(signerResult, r.result),
    changeIndex: r.change_index,
  };
}

/**
 * Ledger files from before change indexes were recorded get the column, and
 * each signed row its change index read back from the PSBT this signer
 * signed (its change was verified before it was signed), in one
 * transaction. Without it an upgraded signer would see no change used and
 * refuse every honest withdrawal past index 19 (CHANGE_BEYOND_GAP).
 */
function migrateLedgerChange(db: Database.Database): void {
  const migrated = () =>
    (db.prepare('PRAGMA table_info(ledger)').all() as { name: string }[]).some(
      (c) => c.name === 'change_index',
    );
  if (!migrated()) {
    db.transaction(() => {
      // Again under the write lock: another process may have migrated the file meanwhile.
      if (migrated()) return;
      db.exec('ALTER TABLE ledger ADD COLUMN change_index INTEGER');
      const rows = db.prepare('SELECT intent, result FROM ledger').all() as {
        intent: string;
        result: string;
      }[];
      const update = db.prepare('UPDATE ledger SET change_index = ? WHERE intent = ?');
      for (const row of rows) {
        const psbt = (JSON.parse(row.result) as { psbt?: unknown }).psbt;
        const bytes = typeof psbt === 'string' ? psbtFromBase64(psbt) : null;
        update.run(bytes?.ok ? claimedChangeIndex(bytes.value) : null, row.intent);
      }
    }).immediate();
  }
  db.exec('CREATE INDEX IF NOT EXISTS ledger_change ON ledger (wallet, change_index)');
}
