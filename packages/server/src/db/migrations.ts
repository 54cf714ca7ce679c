/**
 * The coordinator's schema migrations: one static list for SQLite and
 * PostgreSQL (docs/architecture.md "Storage": the same migrations for both).
 *
 * Why a static list and not files read at run time: the migrations ship
 * inside the package that runs them, so what a coordinator applies is exactly
 * what was reviewed and built, with nothing on disk to add or swap.
 *
 * Portability rules: the schema builder only; TEXT for digests, amounts and
 * JSON; BIGINT for times in ms and sequence numbers; INTEGER for small counts;
 * CHECK constraints spell the allowed statuses. The one unavoidable dialect
 * difference is the generated key: PostgreSQL's `GENERATED ALWAYS AS
 * IDENTITY` against SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT` (SQLite
 * generates values only for an integer primary key, and AUTOINCREMENT never
 * reuses one, so cursors stay valid).
 *
 * Where the tables differ from the first sketch, and why:
 * - intents: `received_seq` is the primary key and `id` (the digest) is
 *   UNIQUE, because SQLite generates values only for an integer primary key;
 *   the unique key refuses a second insert exactly as a primary key would.
 *   `received_at` records when the coordinator stored it (`created_at` is
 *   the client's claim and not to be trusted for ordering).
 * - approvals: `digest`, the approval digest the device signed.
 * - signer_jobs: `deliveries` (how often it was handed out) and
 *   `completed_at`; transactions, kv: `updated_at`; audit_checkpoints:
 *   `received_at`; outbox: `created_at`.
 * - approvals, signer_jobs and transactions reference intents(id).
 *
 * A migration is never edited once released; a change is a new migration at
 * the end. Kysely's Migrator records what ran (table `custos_migration`) and,
 * on PostgreSQL, holds an advisory lock while migrating, so several
 * coordinators starting at once apply each migration once.
 */
import { CustosError } from '@custos/core';
import {
  type ColumnDefinitionBuilder,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
  Migrator,
  PostgresAdapter,
  type RawBuilder,
  sql,
} from 'kysely';
import { BUMP_STATUSES } from './bump-store.js';
import { dbError } from './errors.js';
import { INTENT_STATUSES, JOB_STATUSES, PROPOSAL_STATUSES } from './schema.js';

export const MIGRATION_TABLE = 'custos_migration';
export const MIGRATION_LOCK_TABLE = 'custos_migration_lock';

function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** The generated key column: identity on PostgreSQL, AUTOINCREMENT on SQLite (see the header). */
function serialKey<TB extends string, C extends string>(
  db: Kysely<unknown>,
  table: CreateTableBuilder<TB, C>,
  name: string,
): CreateTableBuilder<TB, C | string> {
  return isPostgres(db)
    ? table.addColumn(name, 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    : table.addColumn(name, 'integer', (c) => c.primaryKey().autoIncrement());
}

function oneOf(column: string, values: readonly string[]): RawBuilder<unknown> {
  return sql`${sql.ref(column)} in (${sql.join(values.map((v) => sql.lit(v)))})`;
}

const notNull = (c: ColumnDefinitionBuilder): ColumnDefinitionBuilder => c.notNull();

const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await serialKey(db, db.schema.createTable('intents'), 'received_seq')
      .addColumn('id', 'text', notNull)
      .addColumn('org', 'text', notNull)
      .addColumn('wallet', 'text', notNull)
      .addColumn('chain', 'text', notNull)
      .addColumn('asset', 'text', notNull)
      .addColumn('amount', 'text', notNull)
      .addColumn('destination', 'text', notNull)
      .addColumn('requester', 'text', notNull)
      .addColumn('device', 'text', notNull)
      .addColumn('created_at', 'bigint', notNull)
      .addColumn('expires_at', 'bigint', notNull)
      .addColumn('body', 'text', notNull)
      .addColumn('status', 'text', notNull)
      .addColumn('status_code', 'text')
      .addColumn('txid', 'text')
      .addColumn('psbt', 'text')
      .addColumn('received_at', 'bigint', notNull)
      .addColumn('updated_at', 'bigint', notNull)
      .addUniqueConstraint('intents_id_key', ['id'])
      .addCheckConstraint('intents_status_check', oneOf('status', INTENT_STATUSES))
      .execute();
    await db.schema
      .createIndex('intents_status_seq')
      .on('intents')
      .columns(['status', 'received_seq'])
      .execute();
    await db.schema
      .createIndex('intents_requester_seq')
      .on('intents')
      .columns(['requester', 'received_seq'])
      .execute();
    await db.schema
      .createIndex('intents_wallet_seq')
      .on('intents')
      .columns(['wallet', 'received_seq'])
      .execute();

    await db.schema
      .createTable('approvals')
      .addColumn('intent', 'text', (c) => c.notNull().references('intents.id'))
      .addColumn('approver', 'text', notNull)
      .addColumn('device', 'text', notNull)
      .addColumn('decision', 'text', notNull)
      .addColumn('digest', 'text', notNull)
      .addColumn('at', 'bigint', notNull)
      .addColumn('expires_at', 'bigint', notNull)
      .addColumn('body', 'text', notNull)
      .addColumn('received_at', 'bigint', notNull)
      .addPrimaryKeyConstraint('approvals_pkey', ['intent', 'approver', 'device'])
      .addCheckConstraint('approvals_decision_check', oneOf('decision', ['approve', 'reject']))
      .execute();

    await db.schema
      .createTable('governance')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('digest', 'text', notNull)
      .addColumn('kind', 'text', notNull)
      .addColumn('body', 'text', notNull)
      .addColumn('received_at', 'bigint', notNull)
      .addUniqueConstraint('governance_digest_key', ['digest'])
      .execute();

    await db.schema
      .createTable('governance_proposals')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', notNull)
      .addColumn('kind', 'text', notNull)
      .addColumn('entry', 'text', notNull)
      .addColumn('signatures', 'text', notNull)
      .addColumn('status', 'text', notNull)
      .addColumn('created_at', 'bigint', notNull)
      .addColumn('updated_at', 'bigint', notNull)
      .addCheckConstraint('governance_proposals_status_check', oneOf('status', PROPOSAL_STATUSES))
      .execute();
    await db.schema
      .createIndex('governance_proposals_status_seq')
      .on('governance_proposals')
      .columns(['status', 'seq'])
      .execute();

    await db.schema
      .createTable('signer_jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('intent', 'text', (c) => c.notNull().references('intents.id'))
      .addColumn('signer', 'text', notNull)
      .addColumn('body', 'text', notNull)
      .addColumn('status', 'text', notNull)
      .addColumn('created_at', 'bigint', notNull)
      .addColumn('delivered_at', 'bigint')
      .addColumn('deliveries', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('result', 'text')
      .addColumn('outcome', 'text')
      .addColumn('code', 'text')
      .addColumn('completed_at', 'bigint')
      .addCheckConstraint('signer_jobs_status_check', oneOf('status', JOB_STATUSES))
      .execute();
    await db.schema
      .createIndex('signer_jobs_signer_status')
      .on('signer_jobs')
      .columns(['signer', 'status', 'created_at'])
      .execute();
    await db.schema.createIndex('signer_jobs_intent').on('signer_jobs').column('intent').execute();

    await db.schema
      .createTable('transactions')
      .addColumn('intent', 'text', (c) => c.primaryKey().references('intents.id'))
      .addColumn('txid', 'text', notNull)
      .addColumn('raw_hex', 'text', notNull)
      .addColumn('broadcast_at', 'bigint', notNull)
      .addColumn('confirmations', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('block_height', 'integer')
      .addColumn('block_hash', 'text')
      .addColumn('updated_at', 'bigint', notNull)
      .execute();
    await db.schema.createIndex('transactions_txid').on('transactions').column('txid').execute();
    await db.schema
      .createIndex('transactions_confirmations')
      .on('transactions')
      .column('confirmations')
      .execute();

    await db.schema
      .createTable('audit_log')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('prev', 'text', notNull)
      .addColumn('at', 'bigint', notNull)
      .addColumn('actor', 'text', notNull)
      .addColumn('event', 'text', notNull)
      .addColumn('subject', 'text', notNull)
      .addColumn('digest', 'text', notNull)
      .addColumn('hash', 'text', notNull)
      .execute();

    await db.schema
      .createTable('audit_checkpoints')
      .addColumn('signer', 'text', notNull)
      .addColumn('seq', 'bigint', notNull)
      .addColumn('head', 'text', notNull)
      .addColumn('body', 'text', notNull)
      .addColumn('received_at', 'bigint', notNull)
      .addPrimaryKeyConstraint('audit_checkpoints_pkey', ['signer', 'seq'])
      .execute();

    await serialKey(db, db.schema.createTable('outbox'), 'id')
      .addColumn('event', 'text', notNull)
      .addColumn('payload', 'text', notNull)
      .addColumn('target', 'text', notNull)
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'bigint', notNull)
      .addColumn('delivered_at', 'bigint')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'bigint', notNull)
      .execute();
    await db.schema
      .createIndex('outbox_due')
      .on('outbox')
      .columns(['delivered_at', 'next_attempt_at'])
      .execute();

    await db.schema
      .createTable('request_nonces')
      .addColumn('key_id', 'text', notNull)
      .addColumn('nonce', 'text', notNull)
      .addColumn('expires_at', 'bigint', notNull)
      .addPrimaryKeyConstraint('request_nonces_pkey', ['key_id', 'nonce'])
      .execute();
    await db.schema.createIndex('request_nonces_expires').on('request_nonces').column('expires_at').execute();

    await db.schema
      .createTable('kv')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', notNull)
      .addColumn('updated_at', 'bigint', notNull)
      .execute();
  },
};

/** Why an intent was refused, rejected or expired, in words, beside its code (shown by the API and the CLI). */
/**
 * The coordinator's policy preview reads what was signed within the longest
 * limit window on every intent and approval: an index on (status,
 * updated_at) makes that read the window's rows only, not every intent ever
 * signed (issue 11: cost independent of history).
 */
const intentLedgerIndex: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createIndex('intents_status_updated')
      .on('intents')
      .columns(['status', 'updated_at'])
      .execute();
  },
};

const intentStatusMessage: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('intents').addColumn('status_message', 'text').execute();
  },
};

/**
 * Coins promised to an intent as rows keyed by outpoint (chain.ts), instead
 * of one JSON document in kv (`chain:reservations`) rewritten whole by every
 * build: the primary key is what makes two coordinators unable to reserve one
 * coin twice. The reservations the old document held are moved over, so an
 * upgrade never frees a promised coin.
 */
const coinReservations: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('coin_reservations')
      .addColumn('outpoint', 'text', (c) => c.primaryKey())
      .addColumn('intent', 'text', notNull)
      .addColumn('reserved_at', 'bigint', notNull)
      .execute();
    await db.schema
      .createIndex('coin_reservations_intent')
      .on('coin_reservations')
      .column('intent')
      .execute();
    const old = await sql<{ value: string }>`select value from kv where key = 'chain:reservations'`.execute(
      db,
    );
    const text = old.rows[0]?.value;
    if (text === undefined) return;
    const doc = JSON.parse(text) as { outpoints?: { outpoint: string; intent: string }[] };
    const now = Date.now();
    for (const o of doc.outpoints ?? []) {
      await sql`insert into coin_reservations (outpoint, intent, reserved_at) values (${o.outpoint}, ${o.intent}, ${now})`.execute(
        db,
      );
    }
    await sql`delete from kv where key = 'chain:reservations'`.execute(db);
  },
};

/**
 * The chain watcher's UTXO tracker as rows (chain.ts), instead of one JSON
 * document in kv (`chain:tracker`) that grew with every block and was
 * rewritten whole at each: one row for the tip, one per tracked coin, one per
 * funding transaction, one per block of undo data. A block writes the rows it
 * changed. The old document is removed: the next coordinator to start scans
 * the chain again from the wallets' birth height, as it does whenever saved
 * state does not restore.
 */
const chainTracker: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('chain_tip')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('height', 'bigint')
      .addColumn('hash', 'text')
      .addColumn('max_undo', 'integer', notNull)
      .addColumn('updated_at', 'bigint', notNull)
      .addCheckConstraint('chain_tip_one_row', sql`id = 1`)
      .execute();
    await db.schema
      .createTable('chain_coins')
      .addColumn('outpoint', 'text', (c) => c.primaryKey())
      .addColumn('txid', 'text', notNull)
      .addColumn('vout', 'bigint', notNull)
      .addColumn('value', 'text', notNull)
      .addColumn('script', 'text', notNull)
      .addColumn('wallet', 'text', notNull)
      .addColumn('branch', 'integer', notNull)
      .addColumn('idx', 'bigint', notNull)
      .addColumn('height', 'bigint', notNull)
      .addColumn('coinbase', 'integer', notNull)
      .addColumn('pending', 'integer', notNull)
      .execute();
    await db.schema.createIndex('chain_coins_txid').on('chain_coins').column('txid').execute();
    await db.schema
      .createTable('chain_txs')
      .addColumn('txid', 'text', (c) => c.primaryKey())
      .addColumn('raw', 'text', notNull)
      .execute();
    await db.schema
      .createTable('chain_undo')
      .addColumn('height', 'bigint', (c) => c.primaryKey())
      .addColumn('body', 'text', notNull)
      .execute();
    await sql`delete from kv where key = 'chain:tracker'`.execute(db);
  },
};

/**
 * The Safe transactions the coordinator built (issue 9, pipeline/evm.ts), one
 * row per EVM intent: the SafeTx proposal and its hash, the Safe nonce it
 * holds, and its execution. `live_nonce` is the nonce while the row holds it
 * and NULL once its intent is refused: the unique index over (chain, safe,
 * live_nonce) is what keeps two coordinators from proposing two transactions
 * for one Safe nonce (NULLs are distinct in a unique index on both SQLite and
 * PostgreSQL, so released nonces can be taken again).
 */
const evmSafeTxs: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('evm_safe_txs')
      .addColumn('intent', 'text', (c) => c.primaryKey().references('intents.id'))
      .addColumn('chain', 'text', notNull)
      .addColumn('safe', 'text', notNull)
      .addColumn('nonce', 'bigint', notNull)
      .addColumn('live_nonce', 'bigint')
      .addColumn('safe_tx', 'text', notNull)
      .addColumn('safe_tx_hash', 'text', notNull)
      .addColumn('exec_hash', 'text')
      .addColumn('executed_at', 'bigint')
      .addColumn('block_number', 'bigint')
      .addColumn('block_hash', 'text')
      .addColumn('confirmations', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'bigint', notNull)
      .execute();
    await db.schema
      .createIndex('evm_safe_txs_live_nonce')
      .unique()
      .on('evm_safe_txs')
      .columns(['chain', 'safe', 'live_nonce'])
      .execute();
    await db.schema.createIndex('evm_safe_txs_hash').on('evm_safe_txs').column('safe_tx_hash').execute();
  },
};

/**
 * A batch intent's outputs (issue 13), canonical JSON, null for a
 * single-output intent: the preview ledger reads them with the other ledger
 * columns, so a destination limit counts every output without decoding bodies.
 */
const intentOutputs: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('intents').addColumn('outputs', 'text').execute();
  },
};

/**
 * Fee bumps (issue 13, db/bump-store.ts): one row per signed bump, with the
 * replacement the coordinator built for it and what became of it. A
 * replacement spends the original's inputs, so the reservations of the
 * intent stay as they are; its final transaction and the one it replaced
 * (txid and raw hex) are kept so that either can be followed on chain.
 */
const bumps: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('bumps')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('intent', 'text', (c) => c.notNull().references('intents.id'))
      .addColumn('body', 'text', notNull)
      .addColumn('fee_rate', 'text', notNull)
      .addColumn('psbt', 'text', notNull)
      .addColumn('txid', 'text', notNull)
      .addColumn('fee', 'text', notNull)
      .addColumn('status', 'text', notNull)
      .addColumn('code', 'text')
      .addColumn('message', 'text')
      .addColumn('raw_hex', 'text')
      .addColumn('replaced_txid', 'text')
      .addColumn('replaced_hex', 'text')
      .addColumn('created_at', 'bigint', notNull)
      .addColumn('updated_at', 'bigint', notNull)
      .addCheckConstraint('bumps_status_check', oneOf('status', BUMP_STATUSES))
      .execute();
    await db.schema.createIndex('bumps_intent').on('bumps').columns(['intent', 'created_at']).execute();
    await db.schema.createIndex('bumps_status').on('bumps').column('status').execute();
  },
};

/**
 * One bump of an intent signed at a time, kept by the database: a partial
 * unique index over the intent of `signing` bumps. Two bumps requested at
 * once on two requests (or two coordinators) both passed the store's check
 * before either was inserted, and both were sent to the signers. A database
 * that already holds such a pair keeps the older one and refuses the others
 * first, as the coordinator would have.
 */
const bumpsOneSigning: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await sql`update bumps set status = 'refused', code = 'CONFLICT',
      message = 'another bump of this intent was requested at the same time'
      where status = 'signing' and exists (
        select 1 from bumps older where older.intent = bumps.intent and older.status = 'signing'
        and (older.created_at < bumps.created_at or (older.created_at = bumps.created_at and older.id < bumps.id)))`.execute(
      db,
    );
    await sql`create unique index bumps_one_signing on bumps (intent) where status = 'signing'`.execute(db);
  },
};

/** Every migration, in order. Names sort in the order they run. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': initial,
  '0002_intent_status_message': intentStatusMessage,
  '0003_coin_reservations': coinReservations,
  '0004_chain_tracker': chainTracker,
  '0005_intent_ledger_index': intentLedgerIndex,
  '0006_evm_safe_txs': evmSafeTxs,
  '0007_intent_outputs': intentOutputs,
  '0008_bumps': bumps,
  '0009_bumps_one_signing': bumpsOneSigning,
});

const provider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};

/**
 * Brings the schema up to date. Idempotent: migrations that already ran are
 * skipped. Throws CustosError: UNAVAILABLE when the database cannot be
 * reached, INTERNAL when a migration fails or the database was migrated by a
 * newer Custos (a migration it recorded is not in this list).
 */
export async function migrate<DB>(db: Kysely<DB>): Promise<readonly string[]> {
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    if (error instanceof Error && /^corrupted migrations/.test(error.message)) {
      throw new CustosError(
        'INTERNAL',
        'the database holds migrations this coordinator does not know: it was migrated by a newer Custos',
        {},
        { cause: error },
      );
    }
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const mapped = dbError(error, 'migrate');
    if (mapped.code === 'UNAVAILABLE' || failed === undefined) throw mapped;
    throw new CustosError(
      'INTERNAL',
      `database migration ${failed} failed`,
      { migration: failed },
      { cause: error },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
