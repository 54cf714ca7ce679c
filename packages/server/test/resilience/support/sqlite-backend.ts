/**
 * The SQLite backend of the API harness alone (test/db/backends.ts also starts
 * a PostgreSQL server for the file, which the fuzzing does not need): a fresh
 * migrated database in a temporary directory per harness, removed after each test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { type CoordinatorDb, openDatabase } from '../../../src/db/connect.js';
import { Store } from '../../../src/db/repository.js';
import type { Backend } from '../../db/backends.js';

export function useSqliteBackend(): Backend {
  const open: CoordinatorDb[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const db of open.splice(0)) await db.close().catch(() => undefined);
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return {
    name: 'sqlite',
    async fresh(opts = {}) {
      const dir = await mkdtemp(join(tmpdir(), 'custos-fuzz-'));
      dirs.push(dir);
      const sqlitePath = join(dir, 'coordinator.db');
      const db = await openDatabase({ sqlitePath });
      open.push(db);
      const store = new Store(db, opts);
      return {
        db,
        store,
        peers: [store],
        peer: () => store,
        reopen: async () => {
          const again = await openDatabase({ sqlitePath });
          open.push(again);
          return again;
        },
      };
    },
  };
}
