/**
 * What only PostgreSQL has: several coordinators on one database, and a
 * server that goes away and comes back (docs/architecture.md "Scale"). While it is down,
 * every operation fails with CustosError UNAVAILABLE and the process keeps
 * running; once it is back, the same Store works again without being reopened.
 */
import { CustosError, verifyAuditChain } from '@custos/core';
import { usePostgres } from '@custos/test-support/postgres';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { type CoordinatorDb, type OpenDatabaseOptions, openDatabase } from '../../src/db/connect.js';
import { dbError } from '../../src/db/errors.js';
import { MIGRATION_TABLE, MIGRATIONS } from '../../src/db/migrations.js';
import { AUDIT_LOCK_KEY, Store } from '../../src/db/repository.js';
import { codeOf, digestOf, makeIntent, T0 } from './fixtures.js';

const postgres = usePostgres();

const opened: CoordinatorDb[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close().catch(() => undefined);
});
async function open(url: string, opts: Omit<OpenDatabaseOptions, 'url'> = {}): Promise<CoordinatorDb> {
  const db = await openDatabase({ ...opts, url });
  opened.push(db);
  return db;
}

const event = (n: number) => ({
  at: T0 + n,
  actor: 'c',
  event: 'tick',
  subject: `${n}`,
  digest: digestOf(n),
});

describe('PostgreSQL test server', () => {
  it('starts in a fresh directory and reports how long it took', () => {
    const { timings, url } = postgres.server();
    expect(url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/custos$/);
    expect(timings.totalMs).toBeGreaterThan(0);
    expect(timings.totalMs).toBeGreaterThanOrEqual(timings.initdbMs + timings.startMs);
    console.info(
      `PostgreSQL 15 test server: initdb ${timings.initdbMs} ms, start ${timings.startMs} ms, ` +
        `ready with a database in ${timings.totalMs} ms`,
    );
  });
});

describe('several coordinators on one PostgreSQL database', () => {
  it('migrates a fresh database once when three coordinators open it at the same time', async () => {
    const url = await postgres.freshDatabase();
    const dbs = await Promise.all([open(url), open(url), open(url)]);
    const ran = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(
      dbs[0]!.db,
    );
    expect(ran.rows).toHaveLength(Object.keys(MIGRATIONS).length);
    // And they all work on the same data.
    const stores = dbs.map((db) => new Store(db));
    await stores[0]!.intents.insert(makeIntent(1));
    expect(await codeOf(stores[1]!.intents.insert(makeIntent(1)))).toBe('DUPLICATE_INTENT');
  });
});

describe('a PostgreSQL restart', () => {
  it('fails operations with UNAVAILABLE while the server is down and recovers when it is back', async () => {
    const url = await postgres.freshDatabase();
    const background: CustosError[] = [];
    const db = await open(url, { onBackgroundError: (err) => background.push(err) });
    const store = new Store(db);
    const { id } = await store.intents.insert(makeIntent(1));
    // Fill the pool with idle connections that the shutdown will break.
    await Promise.all(Array.from({ length: 5 }, () => store.intents.get(id)));

    await postgres.server().halt();
    try {
      expect(await codeOf(store.intents.get(id))).toBe('UNAVAILABLE');
      expect(await codeOf(store.audit.append(event(0)))).toBe('UNAVAILABLE');
      expect(await codeOf(store.intents.insert(makeIntent(2)))).toBe('UNAVAILABLE');
      expect(await codeOf(store.ping())).toBe('UNAVAILABLE');
    } finally {
      await postgres.server().resume();
    }
    // Idle connections lost during the outage were reported, not thrown.
    expect(background.length).toBeGreaterThan(0);
    expect(background.every((e) => e.code === 'UNAVAILABLE')).toBe(true);

    await store.ping();
    expect((await store.intents.get(id))?.status).toBe('pending');
    await store.intents.insert(makeIntent(2));
    expect((await store.audit.append(event(0))).entry.seq).toBe(0);
  });

  it('keeps one unbroken audit chain when the server stops in the middle of appends', async () => {
    const url = await postgres.freshDatabase();
    const stores = [new Store(await open(url)), new Store(await open(url))];
    let n = 0;
    let ok = 0;
    const failures: string[] = [];
    let stopping = false;
    const writer = async (store: Store): Promise<void> => {
      while (!stopping) {
        try {
          await store.audit.append(event(n++));
          ok++;
        } catch (err) {
          failures.push(err instanceof CustosError ? err.code : String(err));
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = [writer(stores[0]!), writer(stores[1]!), writer(stores[0]!), writer(stores[1]!)];
    while (ok < 20) await new Promise((r) => setTimeout(r, 5));
    await postgres.server().halt();
    await new Promise((r) => setTimeout(r, 200));
    await postgres.server().resume();
    const before = ok;
    while (ok < before + 20) await new Promise((r) => setTimeout(r, 5));
    stopping = true;
    await Promise.all(writers);

    expect(failures.length).toBeGreaterThan(0);
    expect(new Set(failures)).toEqual(new Set(['UNAVAILABLE']));
    const entries = await stores[0]!.audit.range(0, 10_000);
    // An append whose commit landed just as its connection broke may be stored though reported failed.
    expect(entries.length).toBeGreaterThanOrEqual(ok);
    expect(verifyAuditChain(entries).ok).toBe(true);
  });

  it('survives a connection broken between two statements of a transaction', async () => {
    const url = await postgres.freshDatabase();
    const db = await open(url);
    const killer = new pg.Client({ connectionString: url });
    await killer.connect();
    let failure: unknown;
    try {
      await db.db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await killer.query('select pg_terminate_backend($1)', [rows[0]?.pid]);
        // The checked-out client hears of it with no query running: an 'error' event nobody awaits.
        await new Promise((r) => setTimeout(r, 200));
        await sql`select 1`.execute(trx);
      });
    } catch (err) {
      failure = err;
    } finally {
      await killer.end();
    }
    expect(dbError(failure, 'test').code).toBe('UNAVAILABLE');
    await new Store(db).ping();
  });

  it('fails with UNAVAILABLE instead of waiting forever behind a coordinator stuck on the audit lock', async () => {
    const url = await postgres.freshDatabase();
    const store = new Store(await open(url, { statementTimeoutMs: 900 }));
    const stuck = new pg.Client({ connectionString: url });
    await stuck.connect();
    try {
      await stuck.query('begin');
      await stuck.query('select pg_advisory_xact_lock($1)', [AUDIT_LOCK_KEY]);
      expect(await codeOf(store.audit.append(event(0)))).toBe('UNAVAILABLE');
      await stuck.query('rollback');
    } finally {
      await stuck.end();
    }
    expect((await store.audit.append(event(0))).entry.seq).toBe(0);
  });
});
