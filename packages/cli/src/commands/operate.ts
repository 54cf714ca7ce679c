/**
 * The operators' commands: `custos serve` runs the coordinator (the server
 * package's startServer), `custos signer init|run` the signer (the signer
 * package's signerCommand, words passed through untouched). The CLI adds
 * nothing to either: the signer's audit surface stays its own package.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CustosError, type Digest, decode, schema } from '@custos/core';
import type { ServerConfig } from '@custos/server';
import { type Command, commonHelp } from '../command.js';

const { object, string, int, oneOf } = schema;

const text = (max = 4096) => string({ min: 1, max });

/** `custos serve --config <file>`: the same settings as the environment variables, in a file. */
export const serveConfigFile = object(
  {},
  {
    host: text(255),
    port: int({ min: 0, max: 65_535 }),
    sqlite: text(),
    databaseUrlFile: text(),
    org: string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/ }),
    bitcoin: object(
      {},
      {
        rpcUrl: text(2048),
        rpcUser: text(255),
        rpcPasswordFile: text(),
      },
    ),
    webhooksFile: text(),
    /** A file holding {"<chainId>": {rpcUrl, executorKey, confirmations?}} (issue 9): it holds a key. */
    evmFile: text(),
    logLevel: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  },
  'custos serve configuration. Secrets are named by file (…File), never written in this file.',
);

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the coordinator',
  help: `custos serve [--config <file.json>]

Runs the coordinator: HTTP API on 127.0.0.1:8080 by default, SQLite unless a
PostgreSQL URL is given, the signing pipeline against a Bitcoin node. Settings
come from the environment (CUSTOS_HOST, CUSTOS_PORT, CUSTOS_SQLITE,
DATABASE_URL[_FILE], CUSTOS_ORG, BITCOIN_RPC_URL, BITCOIN_RPC_USER,
BITCOIN_RPC_PASSWORD[_FILE], CUSTOS_WEBHOOKS[_FILE], CUSTOS_EVM[_FILE] for
Safe wallets, CUSTOS_LOG_LEVEL, CUSTOS_CONSOLE_DIR, CUSTOS_METRICS,
CUSTOS_METRICS_TOKEN[_FILE]) and, over them, from --config (which has no field
for the last three). Paths in the file are
relative to it; secrets are named by file, never written in it. SIGTERM or
Ctrl-C drains requests in flight and stops.

Config file:
  { "host": "127.0.0.1", "port": 8080, "sqlite": "custos.db", "org": "<genesis digest>",
    "bitcoin": { "rpcUrl": "http://127.0.0.1:18443", "rpcUser": "custos",
                 "rpcPasswordFile": "rpc.password" },
    "evmFile": "evm.json" }
  evm.json (Safe wallets; the executor only pays gas):
  { "1": { "rpcUrl": "http://127.0.0.1:8545", "executorKey": "0x<32 bytes>" } }

Example:
  custos serve --config coordinator.json
${commonHelp(['help'])}`,
  options: { config: { type: 'string' } },
  common: ['help'],
  async run(ctx, args) {
    // Loaded here, not at start-up: the server (fastify, drivers) is the heaviest part of the CLI.
    const { readServerConfig, startServer } = await import('@custos/server');
    const base = readServerConfig(ctx.env);
    const configPath = args.str('config');
    const config = configPath === undefined ? base : mergeConfig(base, configPath, readServerConfig);
    const server = await startServer(config, { handleSignals: false });
    ctx.io.err(`custos coordinator listening on ${server.url}\n`);
    const signal = await new Promise<string>((done) => {
      process.once('SIGINT', () => done('SIGINT'));
      process.once('SIGTERM', () => done('SIGTERM'));
    });
    ctx.io.err(`custos coordinator: ${signal}, finishing requests in flight\n`);
    await server.close();
    return 0;
  },
};

function mergeConfig(
  base: ServerConfig,
  path: string,
  readServerConfig: (env: Record<string, string | undefined>) => ServerConfig,
): ServerConfig {
  const file = decode(serveConfigFile, readFileSync(path));
  const dir = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const read = (p: string, what: string): string => {
    try {
      return readFileSync(at(p), 'utf8').replace(/\r?\n$/, '');
    } catch {
      throw new CustosError('INVALID_VALUE', `${what} cannot be read`);
    }
  };
  const chain = { ...base.chain };
  if (file.bitcoin?.rpcUrl !== undefined) chain.rpcUrl = file.bitcoin.rpcUrl;
  if (file.bitcoin?.rpcUser !== undefined) chain.rpcUser = file.bitcoin.rpcUser;
  if (file.bitcoin?.rpcPasswordFile !== undefined)
    chain.rpcPassword = read(file.bitcoin.rpcPasswordFile, 'bitcoin.rpcPasswordFile');
  const webhooks =
    file.webhooksFile === undefined
      ? base.webhooks
      : readServerConfig({ CUSTOS_WEBHOOKS: read(file.webhooksFile, 'webhooksFile') }).webhooks;
  const evm =
    file.evmFile === undefined
      ? base.evm
      : readServerConfig({ CUSTOS_EVM: read(file.evmFile, 'evmFile') }).evm;
  const databaseUrl =
    file.databaseUrlFile === undefined ? base.databaseUrl : read(file.databaseUrlFile, 'databaseUrlFile');
  return {
    ...base,
    ...(file.host === undefined ? {} : { host: file.host }),
    ...(file.port === undefined ? {} : { port: file.port }),
    ...(file.sqlite === undefined ? {} : { sqlitePath: at(file.sqlite) }),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    ...(file.org === undefined ? {} : { org: file.org as Digest }),
    ...(file.logLevel === undefined ? {} : { logLevel: file.logLevel }),
    chain,
    ...(evm === undefined ? {} : { evm }),
    webhooks,
  };
}

/** `custos signer init|run|status`: the words go to the signer package untouched; the help is here. */
function signerPassthrough(
  sub: 'init' | 'run' | 'status' | 'offline' | 'export-key',
  summary: string,
  help: string,
): Command {
  return {
    name: `signer ${sub}`,
    summary,
    help,
    options: {},
    common: ['help'],
    async run() {
      return 2;
    },
    runRaw: async (_ctx, argv) => {
      // Loaded here, not at start: no other command needs the signer (or its SQLite).
      const { signerCommand } = await import('@custos/signer');
      return signerCommand([sub, ...argv]);
    },
  };
}

export const signerInit = signerPassthrough(
  'init',
  "create a signer's encrypted keystore and print its public half",
  `custos signer init --id <id> --keystore <file> [--network regtest|testnet|signet|mainnet] [--password-file <file>]

Creates the signer's keys (one key of the m-of-n wallet and its identity key),
seals them in <file> with the password (scrypt, XChaCha20-Poly1305), and
prints the public half as JSON: id, network, fingerprint, path, xpub and
identity key, what \`custos init --signers\` takes. The password comes from
--password-file or CUSTOS_SIGNER_PASSWORD, never from the command line.

Options:
  --id <id>                the signer's id, e.g. signer-1
  --keystore <file>        where to write the sealed keystore (created 0600)
  --network <name>         regtest (default), testnet, signet or mainnet
  --password-file <file>   the keystore password (else CUSTOS_SIGNER_PASSWORD)
  -h, --help               this text

Example:
  CUSTOS_SIGNER_PASSWORD=... custos signer init --id signer-1 --keystore signer-1.key --network regtest > signer-1.pub.json
`,
);

export const signerRun = signerPassthrough(
  'run',
  'run a signer: pull jobs, verify everything, sign',
  `custos signer run --config <file.json>

Runs the signer: it listens on nothing, polls the coordinator for jobs
(outbound only), verifies each against the governance chain from the pinned
genesis, its own ledger and clock and the transaction bytes, records its
decision durably, then answers with a signed receipt. SIGTERM or Ctrl-C stops it.

Config file (relative paths are read from the file's folder):
  { "id": "signer-1", "coordinatorUrl": "http://127.0.0.1:7340", "genesis": "<digest>",
    "keystore": "signer-1.key", "database": "signer-1.db", "chains": ["bitcoin:regtest"],
    "passwordFile": "signer-1.password" }

Options:
  --config <file>   the signer's configuration
  -h, --help        this text

Example:
  custos signer run --config signer-1.json
`,
);

export const signerStatus = signerPassthrough(
  'status',
  "a signer's own view: frozen or not and why, governance head, ledger size",
  `custos signer status --config <file.json> [--json]

Reads the signer's own database (no password needed; safe while it runs) and
prints whether the signer is frozen, why (the code, the reason and, for a
governance equivocation, the two quorum-signed entries it keeps as evidence:
their seqs and digests) and since when, its governance seq and head digest,
and how many transactions its ledger holds. A signer frozen on an
equivocation signs again once it applies a quorum-signed unfreeze entry.

Options:
  --config <file>   the signer's configuration
  --json            the same as JSON: {signer, frozen, freeze, governance, ledger, safes,
                    equivocations, keyExports}
  -h, --help        this text

Example:
  custos signer status --config signer-1.json --json
`,
);

export const signerOffline = signerPassthrough(
  'offline',
  'cold storage: decide one job file on an air-gapped machine, write the signed result',
  `custos signer offline --config <file.json> --job <job file> --out <result file> [--qr]

The signer on a machine that is never online (cold storage, issue 13). It
reads a job file written by \`custos intents export\` (the job as the signer
feed hands it, and the governance entries it may need), decides it with the
same checks, ledger and codes as \`custos signer run\` (every signature
verified from the pinned genesis, the policy with its own clock and ledger,
the PSBT against the intent; the ledger row written durably before the
signature leaves), and writes the signed result, to be posted with
\`custos intents import\`. A tampered job file is refused with the code the
online signer gives; the same job file again gives the same result; another
transaction for an intent it signed is DUPLICATE_INTENT. The config is the
one \`signer run\` reads; coordinatorUrl may be left out.

Exit codes: 0 signed, 1 refused (the code on stderr; the refusal's result
file is written too, for the coordinator's audit log) or failed, 2 the
command line was wrong.

Options:
  --config <file>   the signer's configuration
  --job <file>      the job file to decide
  --out <file>      where to write the result file
  --qr              write the result as QR lines (CUSTOS1:<i>/<n>:<hash>:<Base45>);
                    a job file in QR lines is read either way
  -h, --help        this text

Example:
  custos signer offline --config signer-3.json --job /media/usb/job.json --out /media/usb/result.json
`,
);

export const signerExportKey = signerPassthrough(
  'export-key',
  "recovery without Custos: write this signer's Bitcoin key as an extended private key",
  `custos signer export-key --config <file.json> --out <file> [--confirm "export <id>"]

Recovery without Custos (docs/operations.md "Recovery without Custos"):
writes this signer's Bitcoin account key as a BIP 32 extended private key
with its origin, [fingerprint/path]xprv (tprv off mainnet), to a new file
(mode 0600; an existing file is never overwritten), for a descriptor wallet
to import with the wallet's descriptor. No quorum is asked: the keystore
password (passwordFile or passwordEnv in the config, else
CUSTOS_SIGNER_PASSWORD) and a typed confirmation are. The export is recorded
in the signer's own database before the file is written, and
\`custos signer status\` shows every export from then on.

Exit codes: 0 written, 1 refused (wrong confirmation or password), 2 the
command line was wrong.

Options:
  --config <file>     the signer's configuration
  --out <file>        where to write the key (must not exist)
  --confirm <text>    the confirmation, "export <id>" (else typed on standard input)
  -h, --help          this text

Example:
  custos signer export-key --config signer-1.json --out /media/usb/signer-1.xprv.json
`,
);
