/**
 * The two storage backends every storage test runs against (docs/architecture.md
 * "Storage"): SQLite in a temporary file and PostgreSQL 15 in a real server
 * (one per test file, a fresh database per test). Call `useBackends()` at the
 * top level of a test file and `describe.each(backends)`.
 *
 * Races: on PostgreSQL, `peers` holds two Stores on two separate connection
 * pools, as two coordinator processes would have. On SQLite it holds one: a
 * second connection in the same process would block the event loop while it
 * waits for the first's write lock (see connect.ts), and SQLite's own locking
 * across processes is SQLite's to test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PostgresPerFile, usePostgres } from '@custos/test-support/postgres';
import { afterEach } from 'vitest';
import { type CoordinatorDb, openDatabase } from '../../src/db/connect.js';
import { Store, type StoreOptions } from '../../src/db/repository.js';

export interface Fresh {
  readonly db: CoordinatorDb;
  readonly store: Store;
  /** Stores as separate coordinators would hold them (see the module header); the first is `store`. */
  readonly peers: readonly Store[];
  /** peers[i modulo their number]: spreads concurrent callers over the peers. */
  peer(i: number): Store;
  /** Opens another CoordinatorDb on the same data (closed after the test). */
  reopen(): Promise<CoordinatorDb>;
}

export interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** A new, empty, migrated database with a Store over it. */
  fresh(opts?: StoreOptions): Promise<Fresh>;
}

export function useBackends(): { backends: readonly Backend[]; postgres: PostgresPerFile } {
  const postgres = usePostgres();
  const toClose: CoordinatorDb[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const db of toClose.splice(0)) await db.close().catch(() => undefined);
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  const track = (db: CoordinatorDb): CoordinatorDb => {
    toClose.push(db);
    return db;
  };

  const sqlite: Backend = {
    name: 'sqlite',
    async fresh(opts = {}) {
      const dir = await mkdtemp(join(tmpdir(), 'custos-sqlite-'));
      dirs.push(dir);
      const sqlitePath = join(dir, 'coordinator.db');
      const db = track(await openDatabase({ sqlitePath }));
      const store = new Store(db, opts);
      return withPeer({
        db,
        store,
        peers: [store],
        reopen: async () => track(await openDatabase({ sqlitePath })),
      });
    },
  };

  const pg: Backend = {
    name: 'postgres',
    async fresh(opts = {}) {
      const url = await postgres.freshDatabase();
      const db = track(await openDatabase({ url }));
      const other = track(await openDatabase({ url }));
      const store = new Store(db, opts);
      return withPeer({
        db,
        store,
        peers: [store, new Store(other, opts)],
        reopen: async () => track(await openDatabase({ url })),
      });
    },
  };

  return { backends: [sqlite, pg], postgres };
}

function withPeer(f: Omit<Fresh, 'peer'>): Fresh {
  return { ...f, peer: (i) => f.peers[i % f.peers.length] ?? f.store };
}
