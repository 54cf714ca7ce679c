/**
 * A real PostgreSQL 15 server for tests (docs/architecture.md "Storage": tests run
 * against both backends; a real PostgreSQL server starts inside the test run).
 *
 * Why a real server and not a mock or an embedded build: the storage layer's
 * guarantees (one governance entry per seq, one unbroken audit chain, each
 * signer job delivered once, each request nonce used once) rest on PostgreSQL's
 * own locking and constraint checks under concurrency. Only the real server
 * shows whether they hold.
 *
 * The server runs from the system packages (/usr/lib/postgresql/15/bin, the
 * `postgresql-15` Debian package, which CI's .ci/run installs) in a fresh
 * temporary directory, listening on a free port on 127.0.0.1 and on a unix
 * socket inside that directory, with trust authentication: nothing outside the
 * machine can reach it. initdb refuses to run as root, so when the tests run
 * as root (as CI does) every PostgreSQL program runs as the `postgres` OS user,
 * which owns the directory; otherwise they run as the current user.
 *
 * `usePostgres()` starts one server per test file (beforeAll/afterAll) and
 * hands each test its own fresh database, so tests never see each other's rows.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

const run = promisify(execFile);

/** Where the postgresql-15 package puts its programs; CUSTOS_PG_BIN overrides it. */
export const POSTGRES_BIN = process.env.CUSTOS_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresTimings {
  /** initdb: creating the cluster. */
  readonly initdbMs: number;
  /** pg_ctl start until the server accepts connections. */
  readonly startMs: number;
  /** Everything, from the empty directory to a created database. */
  readonly totalMs: number;
}

export interface PostgresServer {
  /** URL of the database created at start (`custos`). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly timings: PostgresTimings;
  /** URL of another database on this server (it must exist). */
  urlOf(database: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (pg_ctl stop -m fast), keeping its data directory for `resume`. */
  halt(): Promise<void>;
  /** Starts the server again on the same data directory and port. */
  resume(): Promise<void>;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * Starts a PostgreSQL 15 server in a fresh temporary directory and creates a
 * database `custos` in it. Throws with an explanation when the programs are
 * not installed or the server does not start (with the tail of its log).
 */
export async function startPostgres(): Promise<PostgresServer> {
  const t0 = performance.now();
  for (const program of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(POSTGRES_BIN, program))) {
      throw new Error(
        `PostgreSQL 15 is not installed: ${join(POSTGRES_BIN, program)} is missing. ` +
          "Install the postgresql-15 package (apt-get install postgresql-15; CI's .ci/run does this), " +
          'or point CUSTOS_PG_BIN at a directory holding initdb, pg_ctl and postgres.',
      );
    }
  }
  const as = runAsUser();
  const dir = await mkdtemp(join(tmpdir(), 'custos-pg-'));
  if (as.uid !== undefined && as.gid !== undefined) await chown(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'postgres.log');

  try {
    await pgRun(as, dir, 'initdb', [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    const initdbMs = performance.now() - t0;

    // A free port can be taken between our probe and the server's bind: try a few.
    let port = 0;
    let startMs = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      await appendFile(
        join(data, 'postgresql.conf'),
        [
          '',
          '# custos test server',
          `port = ${port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${dir}'`,
          'shared_buffers = 16MB',
          'max_connections = 100',
          'fsync = on',
          "log_min_messages = 'warning'",
          '',
        ].join('\n'),
      );
      const s = performance.now();
      try {
        await pgCtlStart(as, dir, data, log);
        startMs = performance.now() - s;
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }

    const timings = { initdbMs: Math.round(initdbMs), startMs: Math.round(startMs), totalMs: 0 };
    const server = makeServer({ as, dir, data, log, port, timings });
    await server.createDatabase('custos');
    timings.totalMs = Math.round(performance.now() - t0);
    return server;
  } catch (err) {
    await pgRun(as, dir, 'pg_ctl', ['-D', data, 'stop', '-m', 'immediate']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function makeServer(o: {
  as: RunAs;
  dir: string;
  data: string;
  log: string;
  port: number;
  /** Filled in by the caller once the first database exists. */
  timings: PostgresTimings;
}): PostgresServer {
  const { as, dir, data, log, port } = o;
  let running = true;
  let removed = false;
  let counter = 0;
  // If the test process dies without afterAll, do not leave a server behind.
  const onExit = (): void => {
    if (!running) return;
    try {
      execFileSync(join(POSTGRES_BIN, 'pg_ctl'), ['-D', data, 'stop', '-m', 'immediate'], {
        ...spawnOptions(as, dir),
        stdio: 'ignore',
      });
    } catch {
      // Nothing more can be done while exiting.
    }
  };
  process.once('exit', onExit);

  const urlOf = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${database}`;

  return {
    url: urlOf('custos'),
    port,
    dir,
    get timings(): PostgresTimings {
      return o.timings;
    },
    urlOf,
    async createDatabase(name?: string): Promise<string> {
      counter++;
      const db = name ?? `t${counter}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
      if (!/^[a-z][a-z0-9_]{0,62}$/.test(db)) throw new Error(`bad test database name ${db}`);
      const client = new pg.Client({ connectionString: urlOf('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${db}`);
      } finally {
        await client.end();
      }
      return urlOf(db);
    },
    async halt(): Promise<void> {
      if (!running) return;
      await pgRun(as, dir, 'pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w']);
      running = false;
    },
    async resume(): Promise<void> {
      if (running) return;
      await pgCtlStart(as, dir, data, log);
      running = true;
    },
    async stop(): Promise<void> {
      if (removed) return;
      if (running) {
        await pgRun(as, dir, 'pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w']).catch(() =>
          pgRun(as, dir, 'pg_ctl', ['-D', data, 'stop', '-m', 'immediate', '-w']),
        );
        running = false;
      }
      process.removeListener('exit', onExit);
      await rm(dir, { recursive: true, force: true });
      removed = true;
    },
  };
}

async function pgCtlStart(as: RunAs, dir: string, data: string, log: string): Promise<void> {
  try {
    await pgRun(as, dir, 'pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
  } catch (err) {
    const tail = await tailOf(log);
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n--- ${log} ---\n${tail}`);
  }
}

async function tailOf(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs a PostgreSQL program, as the `postgres` OS user when we are root. */
async function pgRun(as: RunAs, dir: string, program: string, args: readonly string[]): Promise<void> {
  try {
    await run(join(POSTGRES_BIN, program), [...args], { ...spawnOptions(as, dir), timeout: 90_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${program} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

function spawnOptions(
  as: RunAs,
  dir: string,
): { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number } {
  // The postgres user may not be able to read our working directory or HOME.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LC_ALL: 'C',
    HOME: dir,
    TZ: 'UTC',
  };
  return as.uid !== undefined && as.gid !== undefined
    ? { cwd: dir, env, uid: as.uid, gid: as.gid }
    : { cwd: dir, env };
}

/** initdb refuses root: as root, run as the `postgres` OS user (created by the postgresql package). */
function runAsUser(): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('not a number');
    return { uid, gid };
  } catch {
    throw new Error(
      'The tests run as root, and PostgreSQL refuses to: there is no `postgres` OS user to run it as. ' +
        'Install the postgresql-15 package (it creates the user) or run the tests as another user.',
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface PostgresPerFile {
  /** The file's server (available inside tests and hooks, after beforeAll). */
  server(): PostgresServer;
  /** A new, empty database on the file's server: one per test keeps tests isolated. */
  freshDatabase(): Promise<string>;
}

/**
 * Starts one PostgreSQL server for the calling test file (beforeAll) and stops
 * it after the file (afterAll). Call at the top level of the file.
 *
 * @example
 * const pgServer = usePostgres();
 * it('stores things', async () => {
 *   const url = await pgServer.freshDatabase();
 * });
 */
export function usePostgres(): PostgresPerFile {
  let current: PostgresServer | undefined;
  beforeAll(async () => {
    current = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await current?.stop();
  });
  const server = (): PostgresServer => {
    if (current === undefined)
      throw new Error('the PostgreSQL server is not started yet (use it inside tests)');
    return current;
  };
  return {
    server,
    freshDatabase: () => server().createDatabase(),
  };
}
