/**
 * The state folder of `custos dev` (default ./.custos-dev, in .gitignore):
 * everything the development deployment keeps, in one place, so a restart
 * resumes and `rm -rf .custos-dev` starts over.
 *
 *   DEVELOPMENT-ONLY.txt   what this folder is, and that nothing here is for real funds
 *   state.json             written last on the first start: the genesis, the addresses
 *   dev.pid                the running `custos dev`, so a second one is refused
 *   secrets/*.password     demo passwords, generated once (0600)
 *   chain/                 the bcoin regtest chain (on disk)
 *   coordinator.db         the coordinator's SQLite database
 *   signers/               signer-1 and signer-2: keystore, config, database; backup.key (offline key);
 *                          signer-cold: the cold wallet's offline signer (keystore, config, database)
 *   exchange-backend.key   the service requester's sealed device key (`custos demo payouts` opens it)
 *   cold-jobs/             job and result files of the offline signer (custos intents export / import)
 *   home/                  CUSTOS_HOME of the demo members: their sealed device keys and the pin
 *   watcher.json           the watcher's configuration (issue 12), written on every start
 *   watcher-record.json    the watcher's record: spends matched and unexplained, the freezes it signed
 *   logs/                  the signers', the watcher's and the coordinator's output; relay.log
 *   relay.json             present while `custos demo attacks` arms the relay
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decode, primitives, schema } from '@custos/core';
import { writePrivate } from '../home.js';

const { digest, address } = primitives;
const { object, literal, array, string, int } = schema;

export const DEFAULT_DEV_DIR = '.custos-dev';

/** What a first start creates before it writes state.json. */
const PARTIAL = [
  'chain',
  'coordinator.db',
  'coordinator.db-wal',
  'coordinator.db-shm',
  'signers',
  'home',
  'relay.json',
  'exchange-backend.key',
  'cold-jobs',
  'watcher.json',
  'watcher-record.json',
];

export const devStateFile = object(
  {
    v: literal(1),
    genesis: digest,
    wallet: string({ min: 1, max: 64 }),
    addresses: array(
      object({ id: string({ min: 1, max: 64 }), address, label: string({ min: 1, max: 128 }) }),
      { max: 16 },
    ),
    createdAt: primitives.millis,
  },
  {
    /** The demo Safe governance pins (issue 9), absent in a deployment made before the EVM demo. */
    safe: object(
      {
        wallet: string({ min: 1, max: 64 }),
        address: string({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
        chainId: int({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        payee: string({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
      },
      {
        /** For `custos demo attacks`: Bybit's trojan, a contract the Safe owns (Radiant), an account no one governs. */
        trojan: string({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
        ownable: string({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
        attacker: string({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
      },
    ),
    /** The exchange shape (issue 13), absent in a deployment made before it. */
    exchange: object({
      hot: string({ min: 1, max: 64 }),
      cold: string({ min: 1, max: 64 }),
      service: string({ min: 1, max: 64 }),
      offlineSigner: string({ min: 1, max: 64 }),
    }),
  },
);
export type DevState = ReturnType<typeof devStateFile.parse>;

export class DevFolder {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  get home(): string {
    return this.path('home');
  }
  get chain(): string {
    return this.path('chain');
  }
  get database(): string {
    return this.path('coordinator.db');
  }
  get armFile(): string {
    return this.path('relay.json');
  }
  signerDir(): string {
    return this.path('signers');
  }
  /** The service requester's sealed device key (issue 13). */
  get serviceKey(): string {
    return this.path('exchange-backend.key');
  }
  /** Where the offline signer's job and result files go (issue 13). */
  get coldJobs(): string {
    return this.path('cold-jobs');
  }

  ensure(): void {
    for (const d of [this.dir, this.path('secrets'), this.path('logs'), this.signerDir(), this.home]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
    }
    const note = this.path('DEVELOPMENT-ONLY.txt');
    if (!existsSync(note)) {
      writeFileSync(
        note,
        'This folder is the state of `custos dev`, a DEVELOPMENT deployment on Bitcoin regtest.\n' +
          'Its keys are protected by passwords stored right here (secrets/): never use them, or\n' +
          'anything in this folder, for real funds. Delete the folder to start over.\n',
      );
    }
  }

  state(): DevState | null {
    const file = this.path('state.json');
    if (!existsSync(file)) return null;
    return decode(devStateFile, readFileSync(file));
  }

  saveState(state: DevState): void {
    writePrivate(this.path('state.json'), `${JSON.stringify(state, null, 2)}\n`);
  }

  /** A demo password, generated once and kept (0600). Its file path, for profiles and signer configs. */
  passwordFile(name: string): string {
    const file = this.path('secrets', `${name}.password`);
    if (!existsSync(file)) writePrivate(file, `${randomBytes(18).toString('base64url')}\n`);
    return file;
  }

  password(name: string): string {
    return readFileSync(this.passwordFile(name), 'utf8').trim();
  }

  /** Removes what an interrupted first start left (never anything else in the folder). */
  clearPartial(): void {
    for (const p of PARTIAL) rmSync(this.path(p), { recursive: true, force: true });
  }

  /** `custos dev --reset`: everything this folder holds for the deployment, so the next start creates it anew. */
  reset(): void {
    for (const p of [...PARTIAL, 'state.json', 'secrets', 'logs'])
      rmSync(this.path(p), { recursive: true, force: true });
  }

  /** The pid of a `custos dev` already running on this folder, if any. */
  runningPid(): number | null {
    const file = this.path('dev.pid');
    if (!existsSync(file)) return null;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return null;
    try {
      process.kill(pid, 0);
    } catch {
      return null;
    }
    // A pid file left by a crash may name a process that reused the number: check what it runs (Linux).
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('custos') ? pid : null;
    } catch {
      return pid;
    }
  }

  writePid(): void {
    writePrivate(this.path('dev.pid'), `${process.pid}\n`);
  }

  removePid(): void {
    rmSync(this.path('dev.pid'), { force: true });
  }
}
