/**
 * Opening the coordinator's database: SQLite by default, PostgreSQL for
 * production (docs/architecture.md "Storage", "Scale"), both through Kysely, migrated to
 * the latest schema before anything else runs.
 *
 * SQLite (better-sqlite3): WAL, so readers never wait for the writer;
 * synchronous=FULL, so a committed transaction survives a power loss;
 * foreign_keys=ON, which SQLite leaves off by default; a busy timeout, so a
 * second process waits for the write lock instead of failing at once. Every
 * transaction begins IMMEDIATE: it takes the write lock at BEGIN, so two
 * processes can never both read a head (audit, governance) and then both try
 * to write after it; the second waits. Within one process Kysely already runs
 * one statement or transaction at a time on the single connection. Open one
 * CoordinatorDb per SQLite file per process: a second connection in the same
 * process would wait for the first synchronously, blocking the event loop the
 * first needs to finish.
 *
 * PostgreSQL (pg Pool): several coordinators may share one database. A lost
 * server never crashes the process: the pool's and each client's 'error'
 * events are handled (an unhandled 'error' event would), a broken client is
 * dropped from the pool, and new ones are opened on demand. While the server
 * is down or restarting, every operation fails fast with CustosError
 * UNAVAILABLE (connection refused is immediate; an unreachable host fails after
 * `connectTimeoutMs`); a statement that was running when the connection broke
 * fails the same way, and its transaction is rolled back by the server. Once
 * the server is back, the next operation opens fresh connections: nothing is
 * to be done by the caller but retry.
 *
 * The connection URL's password never appears in an error message or in
 * `where`: errors name the host, port, database and user only.
 */
import { CustosError } from '@custos/core';
import Database from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  Kysely,
  PostgresDialect,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
} from 'kysely';
import pg from 'pg';
import { dbError } from './errors.js';
import { migrate } from './migrations.js';
import type { Tables } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface OpenDatabaseOptions {
  /** postgres://user:password@host:port/database (or postgresql://). When set, PostgreSQL is used. */
  readonly url?: string;
  /** Path of the SQLite file (created if missing; its directory must exist), or ':memory:'. */
  readonly sqlitePath?: string;
  /** PostgreSQL pool size (default 10). */
  readonly poolSize?: number;
  /** PostgreSQL: how long to wait for a new connection (default 10 s). */
  readonly connectTimeoutMs?: number;
  /**
   * PostgreSQL: the longest a statement may run (default 30 s) and wait for a
   * lock (a third of that). Past either, the operation fails with UNAVAILABLE
   * instead of hanging behind a stuck coordinator.
   */
  readonly statementTimeoutMs?: number;
  /** SQLite: how long to wait for another process's write lock (default 5 s). */
  readonly busyTimeoutMs?: number;
  /**
   * Told about connection errors that happen outside any operation (an idle
   * PostgreSQL connection lost). They are handled; this is for logging.
   */
  readonly onBackgroundError?: (err: CustosError) => void;
}

export interface CoordinatorDb {
  readonly dialect: Dialect;
  readonly db: Kysely<Tables>;
  /** Where the data lives, for logs: the SQLite path or the PostgreSQL URL without its password. */
  readonly where: string;
  /** Closes every connection. Operations after close fail with UNAVAILABLE. */
  close(): Promise<void>;
  /**
   * PostgreSQL only: calls `onPayload` with each notification on `channel`
   * (LISTEN on a connection of its own, opened again after it breaks; missed
   * notifications are the caller's to poll for). Returns the way to stop.
   */
  readonly listen?: (channel: string, onPayload: (payload: string) => void) => () => void;
}

/**
 * Opens and migrates the coordinator's database: PostgreSQL when `url` is a
 * postgres:// or postgresql:// URL, SQLite at `sqlitePath` otherwise.
 * Throws CustosError: INVALID_VALUE for bad options, UNAVAILABLE when the
 * database cannot be reached or opened, INTERNAL when migrating fails.
 */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<CoordinatorDb> {
  if (opts.url !== undefined) return openPostgres(opts.url, opts);
  if (opts.sqlitePath === undefined || opts.sqlitePath === '') {
    throw new CustosError('INVALID_VALUE', 'no database configured: give a PostgreSQL url or a SQLite path');
  }
  return openSqlite(opts.sqlitePath, opts);
}

// ---------------------------------------------------------------- SQLite

/** Kysely's SQLite driver, with BEGIN IMMEDIATE (see the module header). */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/**
 * SQLite runs DDL inside transactions; Kysely's adapter says it does not, to
 * be safe. Saying it does makes the migrator run each start-up's migrations
 * in one IMMEDIATE transaction: a crash half-way leaves the old schema, and a
 * second process starting at the same time waits, then finds nothing to do.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): SqliteDriver {
    return new ImmediateSqliteDriver(this.#config);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}

async function openSqlite(path: string, opts: OpenDatabaseOptions): Promise<CoordinatorDb> {
  let sqlite: Database.Database;
  try {
    sqlite = new Database(path);
  } catch (err) {
    throw new CustosError(
      'UNAVAILABLE',
      `cannot open the SQLite database at ${path}`,
      { path },
      { cause: err },
    );
  }
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
  } catch (err) {
    sqlite.close();
    throw dbError(err, 'open');
  }
  const db = new Kysely<Tables>({
    dialect: new ImmediateSqliteDialect({ database: cachingStatements(sqlite) }),
  });
  const handle: CoordinatorDb = {
    dialect: 'sqlite',
    db,
    where: path,
    close: () => db.destroy(),
  };
  await migrateOrClose(handle);
  return handle;
}

/** Prepared statements kept per process at most (the coordinator issues a few dozen distinct ones). */
const MAX_STATEMENTS = 1000;

/**
 * The database as Kysely's driver sees it, with each SQL text prepared once:
 * the driver prepares every query it runs, and compiling the same statement
 * again for every request was a tenth of the coordinator's time. A statement
 * is run to completion before the next query starts (one connection, one
 * query at a time), so reusing it is safe; SQLite re-prepares it by itself
 * after a schema change.
 */
function cachingStatements(sqlite: Database.Database): {
  close(): void;
  prepare(sql: string): Database.Statement;
} {
  const statements = new Map<string, Database.Statement>();
  return {
    close: () => {
      statements.clear();
      sqlite.close();
    },
    prepare: (text: string) => {
      let statement = statements.get(text);
      if (statement === undefined) {
        statement = sqlite.prepare(text);
        statements.set(text, statement);
        if (statements.size > MAX_STATEMENTS) statements.delete(statements.keys().next().value as string);
      }
      return statement;
    },
  };
}

// ---------------------------------------------------------------- PostgreSQL

/** The URL without its password, for messages and logs. Throws INVALID_VALUE without echoing the URL. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CustosError('INVALID_VALUE', 'the database URL is not a valid URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new CustosError('INVALID_VALUE', 'the database URL must start with postgres:// or postgresql://', {
      scheme: u.protocol.replace(/:$/, '').slice(0, 32),
    });
  }
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.toString();
}

async function openPostgres(url: string, opts: OpenDatabaseOptions): Promise<CoordinatorDb> {
  const where = redactUrl(url);
  const report = (err: unknown): void => {
    opts.onBackgroundError?.(dbError(err, 'idle connection'));
  };
  const statementTimeout = Math.max(1, Math.floor(opts.statementTimeoutMs ?? 30_000));
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeout,
    lock_timeout: Math.max(1, Math.floor(statementTimeout / 3)),
    // A coordinator that dies inside a transaction must not hold its locks (the audit lock) for long.
    idle_in_transaction_session_timeout: 60_000,
    application_name: 'custos-coordinator',
  });
  // An 'error' event with no listener throws and kills the process. The pool
  // emits one when an idle client loses its connection; a client emits one when
  // its connection breaks while checked out between two statements. Both are
  // handled here; the operation that used the client fails on its own.
  pool.on('error', report);
  pool.on('connect', (client) => {
    client.on('error', () => {
      // Reported through the pool (idle) or the failing query (busy).
    });
  });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  const listeners = new Set<() => void>();
  const handle: CoordinatorDb = {
    dialect: 'postgres',
    db,
    where,
    close: async () => {
      for (const stop of [...listeners]) stop();
      await db.destroy();
    },
    listen: (channel, onPayload) => {
      const connect = (): pg.Client =>
        new pg.Client({
          connectionString: url,
          connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
          application_name: 'custos-coordinator-listen',
        });
      const stop = listenOn(connect, channel, onPayload, () => listeners.delete(stop));
      listeners.add(stop);
      return stop;
    },
  };
  await migrateOrClose(handle);
  return handle;
}

/** How long a broken LISTEN connection waits before it is opened again. */
const RELISTEN_MS = 1000;

/**
 * LISTEN `channel` on a connection of its own, outside the pool (a pool
 * waits at its end for every connection it lent). A connection that breaks
 * (the server restarts) is dropped and another is opened after RELISTEN_MS,
 * for as long as the listener is not stopped; nothing is thrown.
 */
function listenOn(
  connect: () => pg.Client,
  channel: string,
  onPayload: (payload: string) => void,
  onStop: () => void,
): () => void {
  const listen = `LISTEN ${pgIdentifier(channel)}`;
  let stopped = false;
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  const drop = (): void => {
    const c = client;
    client = null;
    c?.removeAllListeners('notification');
    c?.end().catch(() => undefined);
  };
  const later = (): void => {
    if (stopped || timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      void open();
    }, RELISTEN_MS);
    timer.unref();
  };
  const open = async (): Promise<void> => {
    if (stopped) return;
    const c = connect();
    // An 'error' event with no listener would kill the process; the first one drops the connection.
    c.on('error', () => {
      if (client !== c) return;
      drop();
      later();
    });
    try {
      await c.connect();
    } catch {
      c.end().catch(() => undefined);
      later();
      return;
    }
    if (stopped) {
      c.end().catch(() => undefined);
      return;
    }
    client = c;
    c.on('notification', (n) => {
      if (n.channel === channel && typeof n.payload === 'string') onPayload(n.payload);
    });
    c.on('end', () => {
      if (client !== c) return;
      client = null;
      later();
    });
    try {
      await c.query(listen);
    } catch {
      if (client === c) drop();
      later();
    }
  };
  void open();
  return () => {
    if (stopped) return;
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    drop();
    onStop();
  };
}

function pgIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new CustosError('INVALID_VALUE', 'a notification channel is a lower-case identifier');
  }
  return name;
}

async function migrateOrClose(handle: CoordinatorDb): Promise<void> {
  try {
    await migrate(handle.db);
  } catch (err) {
    await handle.close().catch(() => undefined);
    const e = dbError(err, 'open');
    // Name the place (never the password) so the operator knows which database failed.
    throw new CustosError(
      e.code,
      `cannot open the database at ${handle.where}: ${e.message}`,
      { ...e.details, where: handle.where },
      { cause: e },
    );
  }
}
