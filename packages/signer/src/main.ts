/**
 * `custos signer init` and `custos signer run`: the signer process.
 *
 *   custos signer init --id signer-1 --keystore ./signer-1.key --network regtest
 *   custos signer run --config ./signer-1.json
 *   custos signer status --config ./signer-1.json [--json]
 *   custos signer offline --config ./signer-3.json --job job.json --out result.json
 *
 * The password comes from a file (passwordFile) or an environment variable
 * (passwordEnv, default CUSTOS_SIGNER_PASSWORD), never from the command line,
 * where other users of the host could read it.
 *
 * EVM Safes (issue 9): `evm` maps an EVM chain id to this signer's own
 * JSON-RPC node, e.g. `"evm": { "1": { "rpcUrl": "http://127.0.0.1:8545" } }`.
 * The signer reads each Safe's state there before it signs (state
 * attestation); a chain listed there is served (`eip155:<id>` joins
 * `chains`). A Safe on a chain without a node is refused, UNAVAILABLE: the
 * coordinator never names the node a signer trusts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { exportAccountKey } from '@custos/bitcoin/sign';
import {
  CustosError,
  type Digest,
  decode,
  primitives,
  type Schema,
  schema,
  signedGovernanceEntry,
} from '@custos/core';
import { evmNodes } from '@custos/evm';
import { runDaemon } from './daemon.js';
import { createKeystore, unlockKeystore, writeKeystore } from './keystore.js';
import { readJobFile, signOffline, writeResultFile } from './offline.js';
import { SafeNonceLedger } from './safe-ledger.js';
import { Signer, type SignerOptions } from './signer.js';
import { HttpJobSource, WatcherFreezeFeed } from './source.js';
import { SignerStore } from './store.js';

const { id, digest, chain } = primitives;
const { array, int, object, string } = schema;

const path = string({ min: 1, max: 4096 });

const rpcNode = object({ rpcUrl: string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s]+$/ }) });
type RpcNode = schema.Infer<typeof rpcNode>;

/** `evm`: EVM chain id (decimal, 1 to 2^53 - 1) to this signer's own node; at most 16 chains. */
const evmNodeMap: Schema<Record<string, RpcNode>> = evmNodes(rpcNode);
const watchers = array(object({ url: string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ }) }), {
  max: 8,
});
const freezePollMs = int({ min: 50, max: 60_000 });
export const signerConfig = object(
  {
    id,
    coordinatorUrl: string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ }),
    genesis: digest,
    keystore: path,
    database: path,
    chains: array(chain, { min: 1, max: 16, unique: true }),
  },
  {
    passwordFile: path,
    passwordEnv: string({ min: 1, max: 128, pattern: /^[A-Z_][A-Z0-9_]*$/ }),
    waitMs: int({ min: 0, max: 60_000 }),
    keystoreLogN: int({ min: 10, max: 22 }),
    evm: evmNodeMap,
    /** Watchers to pull signed freezes from (issue 12), over outbound GET <url>/v1/freezes. */
    watchers,
    /** How often the watchers are asked for freezes while the job poll waits (default 250 ms). */
    freezePollMs,
  },
);

/**
 * `custos signer offline` reads the same file; an air-gapped signer has no
 * coordinator to name, so `coordinatorUrl` may be left out.
 */
export const offlineSignerConfig = object(
  {
    id,
    genesis: digest,
    keystore: path,
    database: path,
    chains: array(chain, { min: 1, max: 16, unique: true }),
  },
  {
    coordinatorUrl: string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ }),
    passwordFile: path,
    passwordEnv: string({ min: 1, max: 128, pattern: /^[A-Z_][A-Z0-9_]*$/ }),
    waitMs: int({ min: 0, max: 60_000 }),
    keystoreLogN: int({ min: 10, max: 22 }),
    evm: evmNodeMap,
    // An online signer's own file (status and export-key read it too) may name its watchers: unused here.
    watchers,
    freezePollMs,
  },
);

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), event, ...fields })}\n`);
}

function readPassword(opts: { passwordFile?: string; passwordEnv?: string }, base: string): string {
  if (opts.passwordFile !== undefined) {
    return readFileSync(resolve(base, opts.passwordFile), 'utf8').replace(/\r?\n$/, '');
  }
  const name = opts.passwordEnv ?? 'CUSTOS_SIGNER_PASSWORD';
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new CustosError('INVALID_VALUE', `no password: set ${name} or passwordFile in the config`);
  }
  return value;
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

const HELP = `custos signer: the signer daemon

  custos signer init --id <id> --keystore <file> [--network regtest|testnet|signet|mainnet] [--password-file <file>]
      Creates an encrypted keystore and prints its public half (xpub, fingerprint, path, identity key,
      and evmAddress: the Safe owner address admins put into governance as the signer's evmAddress).
      Example: CUSTOS_SIGNER_PASSWORD=... custos signer init --id signer-1 --keystore signer-1.key --network regtest

  custos signer run --config <file>
      Runs the signer: pulls jobs from the coordinator, verifies everything, signs.
      Example: custos signer run --config signer-1.json

  custos signer status --config <file> [--json]
      Prints from the signer's own database (no password needed, also while it runs):
      whether it is frozen, why (code, reason, evidence) and since when, its
      governance seq and head, and its ledger size.
      Example: custos signer status --config signer-1.json --json

  custos signer offline --config <file> --job <job file> --out <result file> [--qr]
      Cold storage (issue 13): decides one job file (JSON, or QR lines: Base45, any order), carried on removable media from
      \`custos intents export\`, with the same checks, ledger and codes as \`signer run\`,
      and writes the signed result for \`custos intents import\`. The config is run's
      (coordinatorUrl may be left out). Exit 0 signed, 1 refused (the code on stderr;
      the refusal's result file is written too), 2 the command line was wrong. --qr writes
      the result as QR lines (CUSTOS1:<i>/<n>:<hash>:<Base45>, one QR code each).
      Example: custos signer offline --config signer-3.json --job /media/usb/job.json --out /media/usb/result.json

  custos signer export-key --config <file> --out <file> [--confirm "export <id>"]
      Recovery without Custos (issue 12; docs/operations.md "Recovery"): writes this signer's
      Bitcoin account key as a BIP 32 extended private key with its origin,
      [fingerprint/path]xprv (tprv off mainnet), to a new file (mode 0600; an existing file is
      never overwritten), for a descriptor wallet to import with the wallet's descriptor. No
      quorum is asked: the keystore password (as for run) and a confirmation are. The
      confirmation is the line "export <id>", typed on standard input or given as --confirm.
      Every export is recorded first in the signer's own database; status shows them.
      Exit 0 written, 1 refused (wrong confirmation or password), 2 the command line was wrong.
      Example: custos signer export-key --config signer-1.json --out /media/usb/signer-1.xprv.json
`;

export async function signerCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'init') return init(rest);
  if (sub === 'run') return run(rest);
  if (sub === 'status') return status(rest);
  if (sub === 'offline') return offline(rest);
  if (sub === 'export-key') return exportKey(rest);
  process.stdout.write(HELP);
  return sub === undefined || sub === '--help' || sub === 'help' ? 0 : 2;
}

async function init(argv: readonly string[]): Promise<number> {
  const signerId = flag(argv, 'id');
  const keystore = flag(argv, 'keystore');
  const network = (flag(argv, 'network') ?? 'regtest') as 'mainnet' | 'testnet' | 'signet' | 'regtest';
  if (
    signerId === undefined ||
    keystore === undefined ||
    !['mainnet', 'testnet', 'signet', 'regtest'].includes(network)
  ) {
    process.stderr.write(HELP);
    return 2;
  }
  const passwordFile = flag(argv, 'password-file');
  const password = readPassword(passwordFile === undefined ? {} : { passwordFile }, process.cwd());
  const logN = flag(argv, 'scrypt-log-n');
  const { file } = await createKeystore({
    id: id.parse(signerId, 'id'),
    network,
    password,
    ...(logN === undefined ? {} : { logN: Number(logN) }),
  });
  writeKeystore(keystore, file);
  process.stdout.write(`${JSON.stringify(file.public, null, 2)}\n`);
  return 0;
}

async function run(argv: readonly string[]): Promise<number> {
  const configPath = flag(argv, 'config');
  if (configPath === undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const base = dirname(resolve(configPath));
  const config = decode(signerConfig, readFileSync(configPath));
  const unlocked = await unlockKeystore(resolve(base, config.keystore), readPassword(config, base));
  if (unlocked.public.id !== config.id) {
    throw new CustosError('INVALID_VALUE', `keystore is for ${unlocked.public.id}, config says ${config.id}`);
  }
  const store = new SignerStore(resolve(base, config.database));
  const source = new HttpJobSource({
    baseUrl: config.coordinatorUrl,
    signerId: config.id,
    identitySecret: unlocked.identitySecret,
  });
  const rpc = new Map(Object.entries(config.evm ?? {}).map(([k, v]) => [Number(k), v.rpcUrl] as const));
  const options = {
    id: config.id,
    identitySecret: unlocked.identitySecret,
    key: unlocked.key,
    pinnedGenesis: config.genesis as Digest,
    // A chain with a trusted node is served; the policy refuses any other (WRONG_CHAIN).
    chains: [...new Set([...config.chains, ...[...rpc.keys()].map((id) => `eip155:${id}`)])],
    store,
    evm: { secret: unlocked.evmSecret, rpc },
  };
  let signer: Signer;
  if (store.governance().length === 0) {
    const genesis = await fetchGenesis(source);
    signer = Signer.init(options, genesis);
  } else {
    signer = Signer.open(options);
  }
  log('signer.started', {
    signer: config.id,
    governanceSeq: signer.governance.seq,
    pid: process.pid,
    ...(unlocked.public.evmAddress === undefined ? {} : { evmAddress: unlocked.public.evmAddress }),
    evmChains: [...rpc.keys()],
  });
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await runDaemon({
    signer,
    source,
    signal: controller.signal,
    ...(config.waitMs === undefined ? {} : { waitMs: config.waitMs }),
    ...(config.watchers === undefined || config.watchers.length === 0
      ? {}
      : { freezes: new WatcherFreezeFeed(config.watchers.map((w) => w.url)) }),
    ...(config.freezePollMs === undefined ? {} : { freezePollMs: config.freezePollMs }),
    onWatcherFreeze: (f) =>
      log(f.outcome === 'applied' ? 'signer.frozen' : 'signer.alert', { source: 'watcher', ...f }),
    onResult: (r) =>
      log('signer.decision', {
        job: r.receipt.job,
        intent: r.receipt.intent,
        outcome: r.receipt.outcome,
        code: r.receipt.code,
        txid: r.receipt.txid,
        ...(r.alert === undefined ? {} : { alert: r.alert }),
      }),
    onCheckpoint: (c) => log(c.ok ? 'signer.checkpoint' : 'signer.alert', c),
    onError: (err) =>
      log('signer.error', { code: err instanceof CustosError ? err.code : 'INTERNAL', message: String(err) }),
  });
  store.close();
  log('signer.stopped', { signer: config.id });
  return 0;
}

/**
 * `custos signer offline`: one job file in, one result file out, through
 * offline.ts (the online signer's shell over this signer's own store).
 */
async function offline(argv: readonly string[]): Promise<number> {
  const configPath = flag(argv, 'config');
  const jobPath = flag(argv, 'job');
  const outPath = flag(argv, 'out');
  if (configPath === undefined || jobPath === undefined || outPath === undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const base = dirname(resolve(configPath));
  const config = decode(offlineSignerConfig, readFileSync(configPath));
  const file = readJobFile(readFileSync(jobPath));
  const unlocked = await unlockKeystore(resolve(base, config.keystore), readPassword(config, base));
  if (unlocked.public.id !== config.id) {
    throw new CustosError('INVALID_VALUE', `keystore is for ${unlocked.public.id}, config says ${config.id}`);
  }
  const store = new SignerStore(resolve(base, config.database));
  try {
    const rpc = new Map(Object.entries(config.evm ?? {}).map(([k, v]) => [Number(k), v.rpcUrl] as const));
    const options: SignerOptions = {
      id: config.id,
      identitySecret: unlocked.identitySecret,
      key: unlocked.key,
      pinnedGenesis: config.genesis as Digest,
      chains: [...new Set([...config.chains, ...[...rpc.keys()].map((id) => `eip155:${id}`)])],
      store,
      evm: { secret: unlocked.evmSecret, rpc },
    };
    const result = await signOffline(options, file);
    writeResultFile(resolve(outPath), result, { qr: argv.includes('--qr') });
    const r = result.receipt;
    log('signer.decision', {
      job: r.job,
      intent: r.intent,
      outcome: r.outcome,
      code: r.code,
      txid: r.txid,
      out: resolve(outPath),
      ...(result.alert === undefined ? {} : { alert: result.alert }),
    });
    if (r.outcome === 'signed') return 0;
    process.stderr.write(`custos signer: ${r.code}: ${result.message ?? 'refused'}\n`);
    return 1;
  } finally {
    store.close();
  }
}

/**
 * `custos signer export-key`: the signer's own key, out of Custos, for a
 * recovery ceremony (issue 12). Guarded by the keystore password and a typed
 * confirmation, not by a quorum: the point is to move funds when Custos is
 * gone. The export is written to the signer's own database before the key
 * touches the file, so it is on record even if the file is lost.
 */
async function exportKey(argv: readonly string[]): Promise<number> {
  const configPath = flag(argv, 'config');
  const outPath = flag(argv, 'out');
  if (configPath === undefined || outPath === undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const base = dirname(resolve(configPath));
  const config = decode(offlineSignerConfig, readFileSync(configPath));
  const out = resolve(outPath);
  if (existsSync(out)) {
    process.stderr.write(`custos signer: ${out} exists; an export never overwrites a file\n`);
    return 2;
  }
  const expected = `export ${config.id}`;
  const typed =
    flag(argv, 'confirm') ??
    (await readLine(`Type "${expected}" to write this signer's private key to ${out}: `));
  if (typed.trim() !== expected) {
    process.stderr.write(
      `custos signer: INVALID_VALUE: the confirmation is "${expected}"; nothing was written\n`,
    );
    return 1;
  }
  const unlocked = await unlockKeystore(resolve(base, config.keystore), readPassword(config, base));
  if (unlocked.public.id !== config.id) {
    throw new CustosError('INVALID_VALUE', `keystore is for ${unlocked.public.id}, config says ${config.id}`);
  }
  const key = exportAccountKey(unlocked.key, unlocked.public.network);
  const at = Date.now();
  const store = new SignerStore(resolve(base, config.database));
  try {
    store.insertKeyExport({ at, fingerprint: key.fingerprint, path: key.path, destination: out });
  } finally {
    store.close();
  }
  const origin = `[${key.fingerprint}/${key.path}]`;
  const file = {
    v: 1,
    kind: 'custos-signer-key-export',
    signer: config.id,
    network: unlocked.public.network,
    fingerprint: key.fingerprint,
    path: key.path,
    xpub: unlocked.public.xpub,
    xprv: key.xprv,
    /** The key expression for the wallet's descriptor, in place of this signer's [origin]xpub. */
    descriptorKey: `${origin}${key.xprv}`,
    exportedAt: new Date(at).toISOString(),
    warning: 'This is a private key: whoever holds it and one more key of a 2-of-3 wallet moves its funds.',
  };
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  log('signer.key-exported', { signer: config.id, fingerprint: key.fingerprint, path: key.path, out });
  return 0;
}

/** One line from standard input (the confirmation), with `prompt` on standard error. */
async function readLine(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const rl = createInterface({ input: process.stdin });
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    rl.close();
  }
}

/** What `custos signer status` reports (its --json form). */
export interface SignerStatus {
  readonly signer: string;
  readonly frozen: boolean;
  readonly freeze: {
    readonly code: string;
    readonly reason: string;
    readonly since: number;
    readonly sinceIso: string;
    readonly governanceSeq: number | null;
    readonly evidence: {
      readonly known: { readonly seq: number; readonly digest: string };
      readonly other: { readonly seq: number; readonly digest: string };
      readonly at: number;
    } | null;
  } | null;
  readonly governance: { readonly seq: number; readonly head: string } | null;
  /** Transactions signed: one entry per intent; fee-bump replacements (issue 13) beside them, not counted as entries. */
  readonly ledger: { readonly entries: number; readonly replacements: number };
  /** Per Safe this signer signed for: how many nonces and the highest (its next is that plus one). */
  readonly safes: readonly {
    readonly chain: string;
    readonly safe: string;
    readonly nonces: number;
    readonly highest: string;
  }[];
  /** Every equivocation ever proven to this signer (kept after an unfreeze). */
  readonly equivocations: number;
  /** Every time this signer's key was exported (`export-key`): when, and to which file. */
  readonly keyExports: readonly {
    readonly at: number;
    readonly atIso: string;
    readonly destination: string;
  }[];
}

export function signerStatus(signerId: string, store: SignerStore): SignerStatus {
  const freeze = store.freeze();
  const proofs = store.equivocations();
  const proof = freeze?.evidence == null ? undefined : proofs.find((e) => e.id === freeze.evidence);
  const head = store.governanceHead();
  return {
    signer: signerId,
    frozen: freeze !== null,
    freeze:
      freeze === null
        ? null
        : {
            code: freeze.code,
            reason: freeze.reason,
            since: freeze.at,
            sinceIso: new Date(freeze.at).toISOString(),
            governanceSeq: freeze.governanceSeq,
            evidence:
              proof === undefined
                ? null
                : {
                    known: { seq: proof.known.seq, digest: proof.known.digest },
                    other: { seq: proof.other.seq, digest: proof.other.digest },
                    at: proof.at,
                  },
          },
    governance: head === null ? null : { seq: head.seq, head: head.digest },
    ledger: { entries: store.ledgerCount(), replacements: store.replacementCount() },
    safes: safesOf(new SafeNonceLedger(store.db)),
    equivocations: proofs.length,
    keyExports: store
      .keyExports()
      .map((e) => ({ at: e.at, atIso: new Date(e.at).toISOString(), destination: e.destination })),
  };
}

function safesOf(ledger: SafeNonceLedger): SignerStatus['safes'] {
  const bySafe = new Map<string, { chain: string; safe: string; nonces: number; highest: bigint }>();
  for (const r of ledger.all()) {
    const k = `${r.chain} ${r.safe}`;
    const s = bySafe.get(k) ?? { chain: r.chain, safe: r.safe, nonces: 0, highest: r.nonce };
    s.nonces++;
    if (r.nonce > s.highest) s.highest = r.nonce;
    bySafe.set(k, s);
  }
  return [...bySafe.values()].map((s) => ({ ...s, highest: s.highest.toString() }));
}

async function status(argv: readonly string[]): Promise<number> {
  const configPath = flag(argv, 'config');
  if (configPath === undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const base = dirname(resolve(configPath));
  const config = decode(offlineSignerConfig, readFileSync(configPath));
  const database = resolve(base, config.database);
  if (!existsSync(database)) {
    throw new CustosError('NOT_FOUND', `no signer database at ${database}: has this signer run yet?`);
  }
  const store = new SignerStore(database);
  let report: SignerStatus;
  try {
    report = signerStatus(config.id, store);
  } finally {
    store.close();
  }
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  const lines = [`signer ${report.signer}`];
  const f = report.freeze;
  if (f === null) {
    lines.push('frozen: no');
  } else {
    lines.push(`frozen: yes, ${f.code}, since ${f.sinceIso}`);
    lines.push(`  reason: ${f.reason}`);
    if (f.evidence !== null) {
      lines.push(
        `  evidence: entry ${f.evidence.known.seq} ${f.evidence.known.digest} (this signer's chain)`,
      );
      lines.push(
        `            entry ${f.evidence.other.seq} ${f.evidence.other.digest} (conflicting, quorum-signed)`,
      );
    }
    lines.push('  cleared by: a quorum-signed unfreeze governance entry');
  }
  lines.push(
    report.governance === null
      ? 'governance: none yet'
      : `governance: seq ${report.governance.seq}, head ${report.governance.head}`,
  );
  lines.push(
    `ledger: ${report.ledger.entries} signed${report.ledger.replacements === 0 ? '' : `, ${report.ledger.replacements} fee-bump replacement(s) beside them`}`,
  );
  for (const s of report.safes) {
    lines.push(`Safe ${s.safe} on ${s.chain}: ${s.nonces} nonces signed, highest ${s.highest}`);
  }
  if (report.equivocations > 0) lines.push(`equivocations proven: ${report.equivocations}`);
  for (const e of report.keyExports) lines.push(`KEY EXPORTED at ${e.atIso} to ${e.destination}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function fetchGenesis(source: HttpJobSource) {
  // The coordinator serves seq 0; Signer.init checks it against the pinned digest.
  for (let attempt = 0; attempt < 30; attempt++) {
    try {
      const entries = await source.governanceEntries(-1, 0);
      if (Array.isArray(entries) && entries.length > 0) {
        return signedGovernanceEntry.parse(entries[0]);
      }
    } catch (err) {
      log('signer.waiting', { reason: err instanceof Error ? err.message : String(err) });
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new CustosError('UNAVAILABLE', 'could not fetch the genesis entry from the coordinator');
}

const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  // Run directly, it takes the same words as `custos signer ...`.
  const args = process.argv.slice(2);
  signerCommand(args[0] === 'signer' ? args.slice(1) : args).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const code = err instanceof CustosError ? err.code : 'INTERNAL';
      process.stderr.write(`custos signer: ${code}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
