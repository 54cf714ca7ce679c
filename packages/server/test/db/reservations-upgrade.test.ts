/**
 * Migration 0003 on SQLite and PostgreSQL: a database that kept its coin
 * reservations as one kv document (`chain:reservations`, before issue 11)
 * comes out of the upgrade with the same reservations as rows, so no coin
 * promised to an intent is offered again; the document is gone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres } from '@custos/test-support/postgres';
import Database from 'better-sqlite3';
import { Kysely, type Migration, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { type CoordinatorDb, openDatabase } from '../../src/db/connect.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, MIGRATIONS } from '../../src/db/migrations.js';
import { Store } from '../../src/db/repository.js';

const postgres = usePostgres();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const A = `${'a'.repeat(64)}:0`;
const B = `${'b'.repeat(64)}:7`;
const DOC = JSON.stringify({
  outpoints: [
    { intent: 'i'.repeat(64), outpoint: A },
    { intent: 'j'.repeat(64), outpoint: B },
  ],
  v: 1,
});

/** Migrates `db` up to 0002 only, as a coordinator before issue 11 left it, and stores the old document. */
async function before0003(db: Kysely<unknown>): Promise<void> {
  const old: Record<string, Migration> = {};
  for (const name of ['0001_initial', '0002_intent_status_message']) old[name] = MIGRATIONS[name]!;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => old },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error } = await migrator.migrateToLatest();
  if (error !== undefined) throw error;
  await db
    .insertInto('kv' as never)
    .values({ key: 'chain:reservations', value: DOC, updated_at: 1 } as never)
    .execute();
  await db.destroy();
}

async function upgradedHolds(open: () => Promise<CoordinatorDb>): Promise<void> {
  const db = await open();
  cleanups.push(() => db.close());
  const store = new Store(db);
  expect(await store.chain.reservations()).toEqual(
    new Map([
      [A, 'i'.repeat(64)],
      [B, 'j'.repeat(64)],
    ]),
  );
  expect(await store.kv.get('chain:reservations')).toBeNull();
  // The rows hold: another intent cannot take a coin still promised.
  expect(await store.chain.reserve('k'.repeat(64), [A])).toBe(false);
}

describe('migration 0003 keeps the reservations of the old kv document', () => {
  it('on sqlite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custos-upgrade-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const sqlitePath = join(dir, 'coordinator.db');
    await before0003(new Kysely({ dialect: new SqliteDialect({ database: new Database(sqlitePath) }) }));
    await upgradedHolds(() => openDatabase({ sqlitePath }));
  });

  it('on postgres', async () => {
    const url = await postgres.freshDatabase();
    await before0003(
      new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) }),
    );
    await upgradedHolds(() => openDatabase({ url }));
  });
});
