/**
 * The signer's own SQLite file (docs/architecture.md "Storage"): governance entries with
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
  CustosError,
  canonicalize,
  type Digest,
  decode,
  type LedgerEntry,
  type LedgerSum,
  type LedgerView,
  ledgerAmountFor,
  ledgerContributions,
  ledgerEntry,
  ledgerKeyOf,
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
CREATE TABLE IF NOT EXISTS ledger_outputs (
  destination TEXT NOT NULL,
  intent TEXT NOT NULL,
  PRIMARY KEY (destination, intent)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE INDEX IF NOT EXISTS ledger_destination ON ledger (destination);
CREATE INDEX IF NOT EXISTS ledger_history ON ledger (wallet, asset, at, intent, amount);
CREATE TABLE IF NOT EXISTS replacements (
  txid TEXT PRIMARY KEY,
  intent TEXT NOT NULL,
  bump TEXT NOT NULL,
  replaces TEXT NOT NULL,
  job TEXT NOT NULL,
  at INTEGER NOT NULL,
  result TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS replacements_intent ON replacements (intent, at);
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
CREATE TABLE IF NOT EXISTS key_exports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  path TEXT NOT NULL,
  destination TEXT NOT NULL
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

/**
 * Running totals for the rolling limits (issue 11): for each key a limit can
 * sum by, one row per ledger entry with the exact sum (decimal text) of the
 * key's entries up to it in (at, seq) order, seq being the ledger row's rowid
 * (insertion order). A window's sum is two lookups; an entry adds one row per
 * key and changes none, unless it is dated before entries already written (a
 * clock stepped back), whose totals it then raises.
 */
const TOTALS_SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_totals (
  k TEXT NOT NULL,
  at INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  cum TEXT NOT NULL,
  PRIMARY KEY (k, at, seq)
) STRICT, WITHOUT ROWID;
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
    migrateLedgerOutputs(this.db);
    migrateLedgerTotals(this.db);
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
    const row = this.statement('SELECT digest FROM governance WHERE seq = ?').get(seq) as
      | { digest: string }
      | undefined;
    return row === undefined ? null : (row.digest as Digest);
  }

  insertGovernance(signed: SignedGovernanceEntry, digest: Digest, seenAt: number): void {
    this.db
      .prepare('INSERT INTO governance (seq, digest, entry, seen_at) VALUES (?, ?, ?, ?)')
      .run(signed.entry.seq, digest, canonicalize(signed), seenAt);
  }

  /** The ledger row of `intent`, schema-checked (a row that does not decode throws: the file was altered). */
  ledgerFor(intent: Digest): LedgerRow | null {
    const row = this.statement('SELECT * FROM ledger WHERE intent = ?').get(intent) as RawLedger | undefined;
    return row === undefined ? null : fromRaw(row);
  }

  /** Ledger entries signed after `since`, schema-checked. */
  ledgerSince(since: number): LedgerEntry[] {
    const rows = this.db.prepare('SELECT * FROM ledger WHERE at > ? ORDER BY at').all(since) as RawLedger[];
    return rows.map((r) => toEntry(r));
  }

  /**
   * The ledger as the questions a decision asks (core's LedgerView): each
   * rolling-limit sum from the running totals (two indexed lookups, whatever
   * the size of the window or the history), an earlier payment by an indexed
   * EXISTS, and a bounded recent history. Amounts are summed exactly as
   * decimal text and bigint, never as SQLite integers (which stop at 2^63).
   * Read inside the decision's transaction, so it sees every entry committed.
   */
  ledgerView(): LedgerView {
    return {
      sum: (q) => this.ledgerSum(q),
      paid: (to, exclude) =>
        this.statement('SELECT 1 FROM ledger WHERE destination = ? AND intent != ? LIMIT 1').get(
          to,
          exclude,
        ) !== undefined ||
        this.statement('SELECT 1 FROM ledger_outputs WHERE destination = ? AND intent != ? LIMIT 1').get(
          to,
          exclude,
        ) !== undefined,
      recent: (wallet, asset, count, exclude) =>
        (
          this.statement(
            `SELECT amount FROM ledger WHERE wallet = ? AND asset = ? AND intent != ?
             ORDER BY at DESC, intent DESC LIMIT ?`,
          ).all(wallet, asset, exclude, count) as { amount: string }[]
        ).map((r) => amountOf(r.amount)),
    };
  }

  private ledgerSum(q: LedgerSum): bigint {
    const k = ledgerKeyOf(q);
    if (k === undefined) {
      // A query no running total answers (none that core asks today): sum the rows it selects.
      let used = 0n;
      for (const r of this.db
        .prepare('SELECT * FROM ledger WHERE asset = ? AND at > ? AND intent != ?')
        .all(q.asset, q.since, q.exclude) as RawLedger[]) {
        used += ledgerAmountFor(q, toEntry(r)) ?? 0n;
      }
      return used;
    }
    const last = this.statement(
      'SELECT cum FROM ledger_totals WHERE k = ? ORDER BY at DESC, seq DESC LIMIT 1',
    ).get(k) as { cum: string } | undefined;
    if (last === undefined) return 0n;
    const before = this.statement(
      'SELECT cum FROM ledger_totals WHERE k = ? AND at <= ? ORDER BY at DESC, seq DESC LIMIT 1',
    ).get(k, q.since) as { cum: string } | undefined;
    let used = amountOf(last.cum) - (before === undefined ? 0n : amountOf(before.cum));
    // The intent being decided is not counted, if it is in the window and under this key.
    const own = this.statement('SELECT * FROM ledger WHERE intent = ?').get(q.exclude) as
      | RawLedger
      | undefined;
    if (own !== undefined) {
      const e = toEntry(own);
      const counted = e.at > q.since ? ledgerContributions(e).get(k) : undefined;
      if (counted !== undefined) used -= counted;
    }
    return used;
  }

  private readonly statements = new Map<string, Database.Statement>();

  private statement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  ledgerCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM ledger').get() as { n: number }).n;
  }

  /** How many fee-bump replacements this signer signed (beside their ledger rows). */
  replacementCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM replacements').get() as { n: number }).n;
  }

  /** Every ledger row, schema-checked. */
  allLedger(): LedgerRow[] {
    return (this.db.prepare('SELECT * FROM ledger ORDER BY at, intent').all() as RawLedger[]).map(fromRaw);
  }

  /** Writes a ledger row and its running totals; call inside {@link exclusive}, so both commit or neither. */
  insertLedger(row: LedgerRow): void {
    const inserted = this.statement(
      `INSERT INTO ledger (intent, txid, wallet, asset, amount, destination, requester, at, job, result, change_index, outputs)
       VALUES (@intent, @txid, @wallet, @asset, @amount, @to, @requester, @at, @job, @result, @changeIndex, @outputs)`,
    ).run({
      intent: row.intent,
      txid: row.txid,
      wallet: row.wallet,
      asset: row.asset,
      amount: row.amount,
      to: row.to,
      requester: row.requester,
      at: row.at,
      job: row.job,
      result: canonicalize(row.result),
      changeIndex: row.changeIndex ?? null,
      outputs: row.outputs === undefined ? null : canonicalize(row.outputs),
    });
    // A batch (issue 13): every destination it pays, for FIRST_PAYMENT.
    if (row.outputs !== undefined) {
      const insert = this.statement(
        'INSERT OR IGNORE INTO ledger_outputs (destination, intent) VALUES (?, ?)',
      );
      for (const o of row.outputs) insert.run(o.to, row.intent);
    }
    addTotals((sql) => this.statement(sql), row, Number(inserted.lastInsertRowid));
  }

  /**
   * Records a replacement this signer signed for an intent already in its
   * ledger (a fee bump, issue 13). It is not a ledger entry and adds nothing
   * to the running totals: the intent's amount counted once, when the
   * original was signed, and the replacement can only confirm instead of it.
   * Call inside {@link exclusive}.
   */
  insertReplacement(r: {
    readonly txid: string;
    readonly intent: Digest;
    readonly bump: Digest;
    readonly replaces: string;
    readonly job: string;
    readonly at: number;
    readonly result: SignerResult;
  }): void {
    this.statement(
      'INSERT INTO replacements (txid, intent, bump, replaces, job, at, result) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(r.txid, r.intent, r.bump, r.replaces, r.job, r.at, canonicalize(r.result));
  }

  /** The replacements this signer signed for `intent`, oldest first, schema-checked. */
  replacementsFor(intent: Digest): { txid: string; bump: Digest; replaces: string; result: SignerResult }[] {
    const rows = this.statement(
      'SELECT txid, bump, replaces, result FROM replacements WHERE intent = ? ORDER BY at, rowid',
    ).all(intent) as { txid: string; bump: string; replaces: string; result: string }[];
    return rows.map((r) => ({
      txid: r.txid,
      bump: r.bump as Digest,
      replaces: r.replaces,
      result: decode(signerResult, r.result),
    }));
  }

  /**
   * The highest change index this signer signed change to in `wallet`, -1
   * for none: its own view of the change branch used (issue 8, item 4).
   */
  highestChangeIndex(wallet: string): number {
    const row = this.statement('SELECT max(change_index) AS n FROM ledger WHERE wallet = ?').get(wallet) as {
      n: number | null;
    };
    return row.n ?? -1;
  }

  insertDecision(job: string, intent: string | null, result: SignerResult): void {
    this.statement(
      'INSERT INTO decisions (job, intent, outcome, code, at, result) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(job, intent, result.receipt.outcome, result.receipt.code, result.receipt.at, canonicalize(result));
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

  /**
   * The signer's own record that its key left it (`custos signer export-key`,
   * issue 12): written before the file is, never deleted; `custos signer
   * status` shows every one.
   */
  insertKeyExport(e: { at: number; fingerprint: string; path: string; destination: string }): void {
    this.statement('INSERT INTO key_exports (at, fingerprint, path, destination) VALUES (?, ?, ?, ?)').run(
      e.at,
      e.fingerprint,
      e.path,
      e.destination,
    );
  }

  keyExports(): { at: number; fingerprint: string; path: string; destination: string }[] {
    return this.db
      .prepare('SELECT at, fingerprint, path, destination FROM key_exports ORDER BY id')
      .all() as {
      at: number;
      fingerprint: string;
      path: string;
      destination: string;
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
      (this.statement(
        'SELECT code, reason, at, governance_seq AS governanceSeq, evidence FROM freeze WHERE id = 1',
      ).get() as LocalFreeze | undefined) ?? null
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
  /** A batch's outputs, canonical JSON; null for a single-output intent. */
  outputs: string | null;
}

/** A ledger row as core's LedgerEntry, schema-checked: an altered row throws rather than counting wrong. */
function toEntry(r: RawLedger): LedgerEntry {
  return ledgerEntry.parse({
    intent: r.intent,
    wallet: r.wallet,
    asset: r.asset,
    amount: r.amount,
    to: r.destination,
    requester: r.requester,
    at: r.at,
    ...(r.outputs === null || r.outputs === undefined ? {} : { outputs: JSON.parse(r.outputs) as unknown }),
  });
}

/** A stored amount or running total: canonical decimal digits, else the file was altered. */
function amountOf(text: string): bigint {
  if (typeof text !== 'string' || !/^(?:0|[1-9][0-9]*)$/.test(text)) {
    throw new CustosError('INTERNAL', `the ledger holds a malformed amount: ${String(text).slice(0, 80)}`);
  }
  return BigInt(text);
}

/**
 * Adds a ledger entry to its running totals: its own row (the total before it
 * plus its amount) and, for entries dated later (a clock stepped back), their
 * totals raised by its amount. Normally there are none.
 */
function addTotals(prepare: (sql: string) => Database.Statement, e: LedgerEntry, seq: number): void {
  amountOf(e.amount);
  const before = prepare(
    'SELECT cum FROM ledger_totals WHERE k = ? AND (at, seq) < (?, ?) ORDER BY at DESC, seq DESC LIMIT 1',
  );
  const later = prepare('SELECT at, seq, cum FROM ledger_totals WHERE k = ? AND (at, seq) > (?, ?)');
  const insert = prepare('INSERT INTO ledger_totals (k, at, seq, cum) VALUES (?, ?, ?, ?)');
  const update = prepare('UPDATE ledger_totals SET cum = ? WHERE k = ? AND at = ? AND seq = ?');
  for (const [k, amount] of ledgerContributions(e)) {
    const prev = before.get(k, e.at, seq) as { cum: string } | undefined;
    insert.run(k, e.at, seq, ((prev === undefined ? 0n : amountOf(prev.cum)) + amount).toString());
    for (const r of later.all(k, e.at, seq) as { at: number; seq: number; cum: string }[]) {
      update.run((amountOf(r.cum) + amount).toString(), k, r.at, r.seq);
    }
  }
}

/**
 * Ledger files from before the running totals get them, computed from their
 * rows in one transaction (and again if the totals do not match the rows:
 * five per entry).
 */
function migrateLedgerTotals(db: Database.Database): void {
  // A table from before totals were ordered by insertion (keyed by intent) is rebuilt.
  const columns = (db.prepare('PRAGMA table_info(ledger_totals)').all() as { name: string }[]).map(
    (c) => c.name,
  );
  if (columns.length > 0 && !columns.includes('seq')) db.exec('DROP TABLE IF EXISTS ledger_totals');
  db.exec(TOTALS_SCHEMA);
  // Five keys per single-output entry; a batch has two per distinct destination and three more.
  const current = () => {
    let expected =
      5 * (db.prepare('SELECT count(*) AS n FROM ledger WHERE outputs IS NULL').get() as { n: number }).n;
    for (const r of db.prepare('SELECT * FROM ledger WHERE outputs IS NOT NULL').all() as RawLedger[]) {
      expected += ledgerContributions(toEntry(r)).size;
    }
    return (db.prepare('SELECT count(*) AS n FROM ledger_totals').get() as { n: number }).n === expected;
  };
  if (current()) return;
  db.transaction(() => {
    if (current()) return;
    db.exec('DELETE FROM ledger_totals');
    const rows = db.prepare('SELECT rowid AS seq, * FROM ledger ORDER BY at, rowid').all() as (RawLedger & {
      seq: number;
    })[];
    const totals = new Map<string, bigint>();
    const insert = db.prepare('INSERT INTO ledger_totals (k, at, seq, cum) VALUES (?, ?, ?, ?)');
    for (const r of rows) {
      const e = toEntry(r);
      for (const [k, amount] of ledgerContributions(e)) {
        const cum = (totals.get(k) ?? 0n) + amount;
        totals.set(k, cum);
        insert.run(k, e.at, r.seq, cum.toString());
      }
    }
  }).immediate();
}

/**
 * Ledger files from before batches (issue 13) get the outputs column; their
 * rows are all single-output entries, so it stays null for each.
 */
function migrateLedgerOutputs(db: Database.Database): void {
  const has = () =>
    (db.prepare('PRAGMA table_info(ledger)').all() as { name: string }[]).some((c) => c.name === 'outputs');
  if (has()) return;
  db.transaction(() => {
    if (!has()) db.exec('ALTER TABLE ledger ADD COLUMN outputs TEXT');
  }).immediate();
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
