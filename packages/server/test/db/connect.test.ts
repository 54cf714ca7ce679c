/**
 * Opening the coordinator's database: SQLite's durability settings, and
 * errors that say what is wrong without ever showing the URL's password.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustosError } from '@custos/core';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, redactUrl } from '../../src/db/connect.js';
import { classifyDbError, dbError } from '../../src/db/errors.js';
import { codeOf } from './fixtures.js';

const PASSWORD = 'hunter2-Secret';

/** Everything an error could show: message, JSON, details, and its causes. */
function everything(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    parts.push(String(e), (e as Error).stack ?? '', JSON.stringify(e));
    if (e instanceof CustosError) parts.push(JSON.stringify(e.toJSON()));
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join('\n');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** A port on 127.0.0.1 that nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 1;
      srv.close(() => resolve(port));
    });
  });
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('opening SQLite', () => {
  it('sets WAL, synchronous FULL, foreign keys and a busy timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custos-sqlite-'));
    dirs.push(dir);
    const db = await openDatabase({ sqlitePath: join(dir, 'c.db'), busyTimeoutMs: 1234 });
    try {
      const pragma = async (name: string) =>
        Object.values(
          (await sql<Record<string, unknown>>`pragma ${sql.raw(name)}`.execute(db.db)).rows[0] ?? {},
        )[0];
      expect(await pragma('journal_mode')).toBe('wal');
      expect(await pragma('synchronous')).toBe(2); // FULL
      expect(await pragma('foreign_keys')).toBe(1);
      expect(await pragma('busy_timeout')).toBe(1234);
      expect(db.dialect).toBe('sqlite');
    } finally {
      await db.close();
    }
  });

  it('says UNAVAILABLE when the file cannot be opened', async () => {
    expect(await codeOf(openDatabase({ sqlitePath: '/nonexistent-dir/custos/c.db' }))).toBe('UNAVAILABLE');
  });

  it('says INVALID_VALUE when no database is configured', async () => {
    expect(await codeOf(openDatabase({}))).toBe('INVALID_VALUE');
  });
});

describe('opening PostgreSQL', () => {
  it('refuses a URL of another scheme without showing its password', async () => {
    const err = await rejection(openDatabase({ url: `mysql://custos:${PASSWORD}@db.internal/custos` }));
    expect((err as CustosError).code).toBe('INVALID_VALUE');
    expect(everything(err)).not.toContain(PASSWORD);
  });

  it('refuses a malformed URL without echoing it', async () => {
    const err = await rejection(openDatabase({ url: `postgres://custos:${PASSWORD}@[::1/custos` }));
    expect((err as CustosError).code).toBe('INVALID_VALUE');
    expect(everything(err)).not.toContain(PASSWORD);
  });

  it('says UNAVAILABLE for an unreachable server, naming it without the password', async () => {
    const port = await closedPort();
    const err = await rejection(
      openDatabase({ url: `postgres://custos:${PASSWORD}@127.0.0.1:${port}/custos` }),
    );
    expect((err as CustosError).code).toBe('UNAVAILABLE');
    expect((err as CustosError).message).toContain(`postgres://custos@127.0.0.1:${port}/custos`);
    expect(everything(err)).not.toContain(PASSWORD);
  });

  it('redacts the password and the query of a URL', () => {
    expect(redactUrl(`postgresql://u:${PASSWORD}@h:5432/db?password=${PASSWORD}&sslmode=require`)).toBe(
      'postgresql://u@h:5432/db',
    );
  });
});

describe('driver errors', () => {
  const withCode = (code: string) => Object.assign(new Error('driver words'), { code });

  it('classifies SQLite and PostgreSQL codes alike', () => {
    expect(classifyDbError(withCode('SQLITE_CONSTRAINT_PRIMARYKEY'))).toBe('unique');
    expect(classifyDbError(withCode('23505'))).toBe('unique');
    expect(classifyDbError(withCode('SQLITE_CONSTRAINT_FOREIGNKEY'))).toBe('foreign-key');
    expect(classifyDbError(withCode('23503'))).toBe('foreign-key');
    expect(classifyDbError(withCode('SQLITE_BUSY'))).toBe('unavailable');
    expect(classifyDbError(withCode('57P01'))).toBe('unavailable');
    expect(classifyDbError(withCode('ECONNREFUSED'))).toBe('unavailable');
    expect(classifyDbError(new Error('Connection terminated unexpectedly'))).toBe('unavailable');
    expect(classifyDbError(withCode('40001'))).toBe('serialization');
    expect(classifyDbError(withCode('42P01'))).toBe('other');
  });

  it('never puts the driver message in the CustosError message', () => {
    const e = dbError(
      Object.assign(new Error('syntax error at or near "select * from intents"'), { code: '42601' }),
      'x',
    );
    expect(e.code).toBe('INTERNAL');
    expect(e.message).not.toContain('select');
    expect(JSON.stringify(e.toJSON())).not.toContain('select');
  });
});
