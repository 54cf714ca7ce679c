/**
 * The coordinator's migrations on SQLite and PostgreSQL: applied at open,
 * idempotent (a restart, or several coordinators starting, never re-applies
 * one), and refusing a database migrated by a newer Custos.
 */
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { MIGRATION_TABLE, MIGRATIONS, migrate } from '../../src/db/migrations.js';
import { useBackends } from './backends.js';
import { codeOf, org } from './fixtures.js';

const { backends } = useBackends();

const TABLES = [
  'approvals',
  'audit_checkpoints',
  'audit_log',
  'bumps',
  'chain_coins',
  'chain_tip',
  'chain_txs',
  'chain_undo',
  'coin_reservations',
  'evm_safe_txs',
  'governance',
  'governance_proposals',
  'intents',
  'kv',
  'outbox',
  'request_nonces',
  'signer_jobs',
  'transactions',
];

describe.each(backends)('migrations on $name', (backend) => {
  it('creates every table at open', async () => {
    const { db } = await backend.fresh();
    const tables = (await db.db.introspection.getTables())
      .map((t) => t.name)
      .filter((n) => !n.startsWith('custos_'));
    expect(tables.sort()).toEqual(TABLES);
  });

  it('runs nothing when migrating again, and keeps the data', async () => {
    const { db, store } = await backend.fresh();
    await store.kv.set('k', 'v');
    expect(await migrate(db.db)).toEqual([]);
    expect(await migrate(db.db)).toEqual([]);
    expect(await store.kv.get('k')).toBe('v');
    const ran = await sql<{
      name: string;
    }>`select name from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db.db);
    expect(ran.rows.map((r) => r.name)).toEqual(Object.keys(MIGRATIONS));
  });

  it('opens the same database again without migrating it twice', async () => {
    const { store, reopen } = await backend.fresh();
    await store.kv.set('k', 'before');
    const second = await reopen();
    const row = await second.db.selectFrom('kv').select('value').where('key', '=', 'k').executeTakeFirst();
    expect(row?.value).toBe('before');
    expect(await migrate(second.db)).toEqual([]);
  });

  it('refuses to open a database migrated by a newer Custos', async () => {
    const { db, reopen } = await backend.fresh();
    const future = '9999_from_the_future';
    const now = new Date().toISOString();
    await sql`insert into ${sql.table(MIGRATION_TABLE)} (name, timestamp) values (${future}, ${now})`.execute(
      db.db,
    );
    expect(await codeOf(reopen())).toBe('INTERNAL');
    await expect(reopen()).rejects.toThrow(/newer Custos/);
  });

  it('fails operations after close with UNAVAILABLE', async () => {
    const { db, store } = await backend.fresh();
    await db.close();
    expect(await codeOf(store.kv.get('k'))).toBe('UNAVAILABLE');
    expect(
      await codeOf(store.audit.append({ at: 1, actor: 'a', event: 'e', subject: '', digest: org.orgId })),
    ).toBe('UNAVAILABLE');
  });
});
