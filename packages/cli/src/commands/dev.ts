/**
 * `custos dev` (npm run dev): a complete local deployment in one process
 * tree, for trying Custos and developing against it.
 *
 *   this process    a bcoin regtest node (chain on disk), the coordinator
 *                   (SQLite), the relay in front of signer-2, a miner that
 *                   confirms what is broadcast
 *   child processes `custos signer run` for signer-1 and signer-2, each with
 *                   its own keystore and database; the third key of the
 *                   2-of-3 wallet is the offline backup (never loaded);
 *                   `custos watch` as member watcher-1 (issue 12), its
 *                   freezes pulled by both signers
 *
 * The first start creates everything (keys, the demo organization, its
 * genesis, a wallet funded by mining) and writes state.json last; later
 * starts resume from the state folder. Ctrl-C (SIGINT) or SIGTERM stops the
 * signers (SIGTERM, then SIGKILL after a bounded wait), the coordinator and
 * the node, each with a timeout, and exits.
 *
 * Development only, and it says so: the demo passwords sit in the state
 * folder next to the keys they protect.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deriveAddress, parseDescriptor } from '@custos/bitcoin';
import {
  type Address,
  buildGenesis,
  CustosError,
  type Digest,
  type GenesisBody,
  governanceDigest,
  isBitcoinWallet,
  signGovernanceEntry,
} from '@custos/core';
import { formatAmount } from '@custos/evm';
import { createKeystore, unlockKeystore, writeKeystore } from '@custos/signer/keystore';
import { CustosClient, memberSigner } from '../client.js';
import { type Command, commonHelp } from '../command.js';
import type { Context } from '../context.js';
import type { DevEvm } from '../dev/evm.js';
import { type DevNode, startDevNode } from '../dev/node.js';
import {
  DEV_COLD,
  DEV_HOT,
  DEV_MEMBERS,
  DEV_OFFLINE_SIGNER,
  DEV_SAFE_ID,
  DEV_SERVICE,
  DEV_SERVICE_DEVICE,
  DEV_WALLET,
  type DevSafe,
  demoEvmAddress,
  devGenesisBody,
  HOT_HOURLY,
  PAYOUT_MAX,
  SMALL_MAX,
} from '../dev/org.js';
import { startRelay } from '../dev/relay.js';
import { DEFAULT_DEV_DIR, DevFolder, type DevState } from '../dev/state.js';
import { createDeviceKey, unlockDevice, writeSealedDeviceKey } from '../device.js';
import { Home, writeJson, writePrivate } from '../home.js';
import { formatSats } from '../output.js';

const SIGNERS = ['signer-1', 'signer-2'] as const;
/** Dev keys: a lower scrypt cost than the default, so the first start and every command stay quick. */
const DEV_LOG_N = 14;
/** Blocks mined to the wallet on the first start (regtest subsidy at that height: 12.5 BTC each). */
const FUNDING_BLOCKS = 4;
const COINBASE_MATURITY = 100;
const STOP_TIMEOUT_MS = 5_000;

export const devCommand: Command = {
  name: 'dev',
  summary: 'start a complete local deployment (development only)',
  help: `custos dev [--dir .custos-dev] [--port 7340] [--reset]

Starts, in one process tree: a Bitcoin regtest node (bcoin, chain on disk),
a local EVM chain (Hardhat, in memory, 127.0.0.1) with a 2-of-3 Safe 1.4.1
holding ETH and a 6-decimal USDT, the coordinator (SQLite), two signer
processes of the 2-of-3 wallet and Safe (the third key is an offline
backup; each signer reads the Safe from its own configured node), the
watcher (\`custos watch\` as watcher-1: every spend of the wallets' coins
matched against what the signers signed, a freeze on anything else, pulled
by both signers), and a
demo organization: admins admin-1 and
admin-2 (quorum 2), requester-1, approvers approver-1..3, watcher-1; a policy
with tiers (up to ${formatSats(SMALL_MAX)}: 1 approver; above: 2 approvers and a
cancel window) and rolling limits; an address book of two regtest addresses;
the wallet funded by mining. And the exchange shape (issue 13): a hot wallet
paid out by the service requester exchange-backend under an automated,
bounded rule (\`custos demo payouts\` plays that backend), a cold wallet
signed by an offline signer through job files in cold-jobs/, and refill and
sweep rules between them (internal transfers). Prints what to type next.

State lives in one folder and survives a restart; delete it (or --reset) to
start over. Ctrl-C stops everything. DEVELOPMENT ONLY: the demo passwords
are stored in the state folder.

Options:
  --dir <path>     the state folder (default ${DEFAULT_DEV_DIR})
  --port <n>       the coordinator's port on 127.0.0.1 (default 7340; 0 picks a free one)
  --reset          delete the state and start over

Example:
  npm run dev
  custos dev --dir /tmp/custos-demo --port 0
${commonHelp(['help'])}`,
  options: { dir: { type: 'string' }, port: { type: 'string' }, reset: { type: 'boolean' } },
  common: ['help'],
  async run(ctx, args) {
    const folder = new DevFolder(resolve(ctx.cwd, args.str('dir') ?? DEFAULT_DEV_DIR));
    const port = args.int('port', { min: 0, max: 65_535 }) ?? 7340;
    const running = folder.runningPid();
    if (running !== null) {
      throw new CustosError('CONFLICT', `custos dev is already running on ${folder.dir} (pid ${running})`);
    }
    if (args.bool('reset')) folder.reset();
    return runDev(ctx, folder, port);
  },
};

interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  readonly log: string;
  readonly exited: Promise<void>;
  /** Where it serves (the watcher: `GET /v1/freezes`, `/metrics`). */
  url?: string;
}

async function runDev(ctx: Context, folder: DevFolder, port: number): Promise<number> {
  const t0 = Date.now();
  const say = (text: string): void => ctx.io.out(text);
  folder.ensure();
  let existing = folder.state();
  if (existing === null) {
    // No state.json: a first start, or one that was interrupted; what it left cannot be trusted.
    if (existsSync(folder.chain)) say('custos dev: an earlier first start did not finish; starting over\n');
    folder.clearPartial();
    folder.ensure();
  }
  folder.writePid();
  const stoppers: (() => Promise<void>)[] = [];
  const children: Child[] = [];
  let stopping: Promise<void> | null = null;
  let miner: NodeJS.Timeout | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (miner !== undefined) clearInterval(miner);
      // Signers first: they must not be mid-request when the coordinator goes.
      await Promise.all(children.map((c) => stopChild(c)));
      for (const s of stoppers.reverse()) await withTimeout(s(), STOP_TIMEOUT_MS).catch(() => undefined);
      folder.removePid();
    })();
    return stopping;
  };
  let signalled: ((signal: string) => void) | undefined;
  const interrupted = new Promise<string>((resolve) => {
    signalled = resolve;
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    // A second Ctrl-C does not wait for the orderly stop.
    if (signals > 1) {
      for (const c of children) c.child.kill('SIGKILL');
      folder.removePid();
      process.exit(130);
    }
    signalled?.(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say(
      `custos dev: DEVELOPMENT deployment in ${folder.dir} (demo keys and passwords on disk: never for real funds)\n`,
    );
    const node = await startDevNode({ dir: folder.chain });
    stoppers.push(() => node.close());
    await node.activateSegwit();

    const firstStart = existing === null;
    // The EVM demo (issue 9): optional, so that Bitcoin runs wherever the Hardhat dev dependencies are absent.
    let evm: DevEvm | null = null;
    let evmNote: string | null = null;
    const startEvm = async (owners: readonly string[]): Promise<DevEvm | null> => {
      try {
        const { startDevEvm } = await import('../dev/evm.js');
        const started = await startDevEvm(owners as Parameters<typeof startDevEvm>[0]);
        stoppers.push(() => started.close());
        evm = started;
        return started;
      } catch (err) {
        evmNote = `the EVM chain did not start (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): Bitcoin only`;
        return null;
      }
    };
    const setup = firstStart ? await createDeployment(folder, startEvm) : null;
    const genesis = (existing?.genesis ?? setup?.genesis) as Digest;
    if (!firstStart && existing?.safe !== undefined) {
      const resumed = await startEvm(ownersOnDisk(folder));
      if (resumed !== null && resumed.safe.toLowerCase() !== existing.safe.address.toLowerCase()) {
        evmNote = `the Safe was deployed at ${resumed.safe}, not at ${existing.safe.address} that governance pins: EVM demo off`;
        evm = null;
      } else if (resumed !== null) {
        await catchUpNonces(folder, resumed, existing.safe.payee);
      }
    } else if (!firstStart) {
      evmNote = 'this deployment predates the EVM demo: `custos dev --reset` to get a Safe';
    }
    const evmRunning = evm as DevEvm | null;

    // Loaded on use: the server is the heaviest part of the CLI, and most commands never need it.
    const { startDevCoordinator } = await import('../dev/coordinator.js');
    // The approver console, built from this checkout's sources (reproducible: the same bytes as a release).
    const { writeConsole } = await import('@custos/web/build');
    const consoleDir = folder.path('console');
    await writeConsole(consoleDir);
    const coordinator = await startDevCoordinator({
      consoleDir,
      sqlitePath: folder.database,
      port,
      org: genesis,
      rpc: { url: node.rpcUrl, username: node.rpcUser, password: node.rpcPassword },
      ...(evmRunning === null
        ? {}
        : {
            evm: {
              chainId: evmRunning.chainId,
              rpcUrl: evmRunning.rpcUrl,
              executorKey: evmRunning.executorKey,
            },
          }),
      logFile: folder.path('logs', 'coordinator.log'),
    });
    stoppers.push(() => coordinator.close());
    const home = new Home(folder.home);
    home.saveConfig({ coordinator: coordinator.url, genesis });

    if (setup !== null) {
      // The genesis goes in through the API, signed by an admin it lists, as `custos init` does.
      const admin = await unlockDevice(home, 'admin-1', { env: {} });
      await new CustosClient({ baseUrl: coordinator.url, signer: memberSigner(admin) }).postGenesis(
        setup.signed,
      );
      await fundWallet(node, setup.descriptorText, setup.exchangeDescriptors);
      existing = {
        v: 1,
        genesis,
        wallet: DEV_WALLET,
        addresses: setup.addresses,
        createdAt: Date.now(),
        exchange: { hot: DEV_HOT, cold: DEV_COLD, service: DEV_SERVICE, offlineSigner: DEV_OFFLINE_SIGNER },
        ...(setup.safe === null
          ? {}
          : {
              safe: {
                wallet: DEV_SAFE_ID,
                address: setup.safe.address,
                chainId: setup.safe.chainId,
                payee: demoEvmAddress('payee'),
                ...(setup.evm === null
                  ? {}
                  : { trojan: setup.evm.trojan, ownable: setup.evm.ownable, attacker: setup.evm.attacker }),
              },
            }),
      };
      folder.saveState(existing);
    }
    const state = existing as DevState;

    const relay = await startRelay({
      target: coordinator.url,
      armFile: folder.armFile,
      logFile: folder.path('logs', 'relay.log'),
      injectFile: folder.path('relay-inject.json'),
      resultFile: folder.path('relay-result.json'),
    });
    stoppers.push(() => relay.close());
    // The watcher (issue 12) first: the signers are configured with its address, to pull its freezes.
    const watcher = await startWatcher(ctx, folder, { coordinator: coordinator.url, genesis, node });
    children.push(watcher);
    for (const id of SIGNERS) {
      writeJson(join(folder.signerDir(), `${id}.json`), {
        id,
        coordinatorUrl: id === 'signer-2' ? relay.url : coordinator.url,
        genesis,
        keystore: `${id}.key`,
        database: `${id}.db`,
        chains: ['bitcoin:regtest'],
        passwordFile: folder.passwordFile(id),
        waitMs: 10_000,
        watchers: [{ url: watcher.url }],
        // The signer's own trusted node for the Safe's state (here the same local chain; named by the signer's config, never by the coordinator).
        ...(evmRunning === null
          ? {}
          : { evm: { [String(evmRunning.chainId)]: { rpcUrl: evmRunning.rpcUrl } } }),
      });
      children.push(startSigner(ctx, folder, id));
    }
    if (state.exchange !== undefined) {
      // The cold wallet's offline signer never runs here: `custos signer offline` reads this config
      // (no coordinatorUrl: it talks to nobody) with job files carried through cold-jobs/.
      mkdirSync(folder.coldJobs, { recursive: true, mode: 0o700 });
      writeJson(join(folder.signerDir(), `${DEV_OFFLINE_SIGNER}.json`), {
        id: DEV_OFFLINE_SIGNER,
        genesis,
        keystore: `${DEV_OFFLINE_SIGNER}.key`,
        database: `${DEV_OFFLINE_SIGNER}.db`,
        chains: ['bitcoin:regtest'],
        passwordFile: folder.passwordFile(DEV_OFFLINE_SIGNER),
      });
    }
    await Promise.all(
      children.filter((c) => c !== watcher).map((c) => waitForLog(c, '"event":"signer.started"', 60_000)),
    );

    // Confirm what the coordinator broadcasts, as a network would: a block when the mempool has something.
    let mining = false;
    miner = setInterval(() => {
      if (mining) return;
      mining = true;
      node
        .mempoolSize()
        .then((n) => (n > 0 ? node.mine(1) : undefined))
        .catch(() => undefined)
        .finally(() => {
          mining = false;
        });
    }, 2_000);

    const balance = await waitForBalance(coordinator.url, home, 60_000);
    const safeBalances = evmRunning === null ? null : await safeBalancesText(coordinator.url, home);
    const exchangeBalances =
      state.exchange === undefined ? null : await walletBalances(coordinator.url, home, [DEV_HOT, DEV_COLD]);
    printNextSteps(ctx, folder, {
      evm: evmRunning,
      evmNote,
      safeBalances,
      exchangeBalances,
      coordinator: coordinator.url,
      relay: relay.url,
      genesis,
      state,
      height: node.height(),
      balance,
      children,
      seconds: (Date.now() - t0) / 1000,
      firstStart,
    });

    const signal = await Promise.race([
      interrupted,
      ...children.map((c) => c.exited.then(() => `${c.name} exited (see ${c.log})`)),
    ]);
    say(`\ncustos dev: stopping (${signal})\n`);
    await stop();
    say('custos dev: stopped\n');
    return signal.startsWith('SIG') ? 0 : 1;
  } catch (err) {
    await stop();
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

interface Setup {
  readonly genesis: Digest;
  readonly signed: ReturnType<typeof signGovernanceEntry>;
  readonly descriptorText: string;
  /** The hot and cold wallets' descriptors (issue 13), funded on the first start. */
  readonly exchangeDescriptors: { readonly hot: string; readonly cold: string };
  readonly addresses: DevState['addresses'];
  readonly safe: DevSafe | null;
  readonly evm: DevEvm | null;
}

/** After a restart: the fresh chain's Safe nonce brought up to what the signers' ledgers already signed. */
async function catchUpNonces(folder: DevFolder, evm: DevEvm, payee: string): Promise<void> {
  const { catchUpSafeNonce, signedNoncesEnd } = await import('../dev/evm.js');
  const target = await signedNoncesEnd(
    SIGNERS.map((id) => join(folder.signerDir(), `${id}.db`)),
    evm.safe,
  );
  if (target === 0n || (await evm.safeNonce()) >= target) return;
  const secrets = await Promise.all(
    ['signer-1', 'backup'].map(async (id) => {
      const k = await unlockKeystore(join(folder.signerDir(), `${id}.key`), folder.password(id));
      if (k.evmSecret === null) throw new CustosError('INVALID_VALUE', `keystore ${id} has no EVM key`);
      return k.evmSecret;
    }),
  );
  await catchUpSafeNonce(evm, target, secrets, payee as Address);
}

/** The EVM owner addresses of signer-1, signer-2 and the backup, from their keystores' public halves. */
function ownersOnDisk(folder: DevFolder): string[] {
  return [...SIGNERS, 'backup'].map((id) => {
    const file = JSON.parse(readFileSync(join(folder.signerDir(), `${id}.key`), 'utf8')) as {
      public: { evmAddress?: string };
    };
    if (file.public.evmAddress === undefined)
      throw new CustosError('INVALID_VALUE', `keystore ${id} has no EVM key`);
    return file.public.evmAddress;
  });
}

/**
 * First start: keystores, member keys, the local EVM chain with the demo
 * Safe owned by the keystores' EVM keys (when it starts), the demo genesis
 * signed by both admins.
 */
async function createDeployment(
  folder: DevFolder,
  startEvm: (owners: readonly string[]) => Promise<DevEvm | null>,
): Promise<Setup> {
  const signerKeys = await Promise.all(
    [...SIGNERS, 'backup', DEV_OFFLINE_SIGNER].map(async (id) => {
      const { file } = await createKeystore({
        id,
        network: 'regtest',
        password: folder.password(id),
        logN: DEV_LOG_N,
      });
      writeKeystore(join(folder.signerDir(), `${id}.key`), file);
      return file.public;
    }),
  );
  const home = new Home(folder.home);
  const members = [];
  for (const m of DEV_MEMBERS) {
    const device = `${m.id}-laptop`;
    const file = await createDeviceKey(home, m.id, m.id, device, folder.password(m.id), {
      logN: DEV_LOG_N,
      passwordFile: folder.passwordFile(m.id),
    });
    members.push({ id: m.id, device, publicKey: file.publicKey });
  }
  home.saveConfig({ profile: 'requester-1' });
  // The exchange backend (issue 13): a service requester whose key is a sealed file on its server.
  const service = await writeSealedDeviceKey(
    folder.serviceKey,
    DEV_SERVICE,
    DEV_SERVICE_DEVICE,
    folder.password(DEV_SERVICE),
    { logN: DEV_LOG_N },
  );
  const keyOf = (p: (typeof signerKeys)[number]) => ({
    fingerprint: p.fingerprint,
    path: p.path,
    xpub: p.xpub,
  });
  const backup = signerKeys.find((p) => p.id === 'backup')!;
  const offline = signerKeys.find((p) => p.id === DEV_OFFLINE_SIGNER)!;
  const running = signerKeys.filter((p) => (SIGNERS as readonly string[]).includes(p.id));
  const evmOf = (p: (typeof signerKeys)[number]) => (p as { evmAddress?: string }).evmAddress;
  const owners = [...running, backup].map(evmOf);
  const evm = owners.every((o) => o !== undefined) ? await startEvm(owners as string[]) : null;
  const safe: DevSafe | null =
    evm === null
      ? null
      : {
          chainId: evm.chainId,
          address: evm.safe,
          singleton: evm.singleton,
          singletonCodeHash: evm.singletonCodeHash,
          fallbackHandler: evm.fallbackHandler,
          token: evm.token,
          owners: [
            ...running.map((p) => ({ signer: p.id, address: evmOf(p) as string })),
            { signer: 'signer-backup', address: evmOf(backup) as string },
          ],
        };
  const records = running.map((p) => ({
    record: {
      id: p.id,
      publicKey: p.identityKey,
      label: p.id,
      ...(safe === null ? {} : { evmAddress: evmOf(p) as Address }),
    },
    key: keyOf(p),
  }));
  const body = devGenesisBody({
    members,
    signers: records,
    backup: keyOf(backup),
    exchange: {
      service,
      offline: {
        record: { id: offline.id, publicKey: offline.identityKey, label: 'Cold wallet signer (offline)' },
        key: keyOf(offline),
      },
    },
    ...(safe === null
      ? {}
      : {
          safe,
          // The Safe's third owner: a governed signer record for the offline backup key (never run).
          safeOnlySigners: [
            {
              id: 'signer-backup',
              publicKey: backup.identityKey,
              label: 'Offline backup (third Safe owner)',
              evmAddress: evmOf(backup) as Address,
            },
          ],
        }),
  });
  const entry = buildGenesis(body, Date.now());
  const admins = await Promise.all(['admin-1', 'admin-2'].map((a) => unlockDevice(home, a, { env: {} })));
  const signed = signGovernanceEntry(entry, admins);
  return {
    genesis: governanceDigest(entry),
    signed,
    descriptorText: body.wallets.find(isBitcoinWallet)!.descriptor,
    exchangeDescriptors: {
      hot: descriptorOf(body, DEV_HOT),
      cold: descriptorOf(body, DEV_COLD),
    },
    addresses: body.addresses
      .filter((a) => a.chain === 'bitcoin:regtest')
      .map((a) => ({ id: a.id, address: a.address, label: a.label })),
    safe,
    evm,
  };
}

/** The Safe's balances as the coordinator reports them, each with its unit. */
async function safeBalancesText(url: string, home: Home): Promise<string> {
  const viewer = await unlockDevice(home, 'watcher-1', { env: {} });
  const client = new CustosClient({ baseUrl: url, signer: memberSigner(viewer) });
  const wallets = await client.wallets().catch(() => []);
  const safe = wallets.find((w) => w.id === DEV_SAFE_ID);
  if (safe?.balances === undefined || safe.balances.length === 0) return '(not reported yet)';
  const units: Record<string, { symbol: string; decimals: number }> = {
    eth: { symbol: 'ETH', decimals: 18 },
    usdt: { symbol: 'USDT', decimals: 6 },
  };
  return safe.balances
    .map((b) => {
      const u = units[b.asset];
      return u === undefined
        ? `${b.balance} ${b.asset}`
        : `${formatAmount(BigInt(b.balance), u.decimals)} ${u.symbol}`;
    })
    .join(', ');
}

function descriptorOf(body: GenesisBody, id: string): string {
  const w = body.wallets.find((x) => x.id === id);
  if (w === undefined || !isBitcoinWallet(w)) throw new Error(`BUG: no Bitcoin wallet ${id}`);
  return w.descriptor;
}

/** Hot wallet coins: many, so payouts in a stream do not wait for each other's change to confirm. */
const HOT_COINS = 12;
const HOT_COIN = 25_000_000n;
const COLD_COINS = 2;
const COLD_COIN = 1_000_000_000n;

/** The balances of `ids` as the coordinator reports them, once it has seen the first (bounded wait). */
async function walletBalances(url: string, home: Home, ids: readonly string[]): Promise<Map<string, string>> {
  const viewer = await unlockDevice(home, 'watcher-1', { env: {} });
  const client = new CustosClient({ baseUrl: url, signer: memberSigner(viewer) });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const wallets = await client.wallets().catch(() => []);
    const found = new Map(wallets.filter((w) => ids.includes(w.id)).map((w) => [w.id, w.balance]));
    if (BigInt(found.get(ids[0] ?? '') ?? '0') > 0n || Date.now() > deadline) return found;
    await sleep(250);
  }
}

/**
 * Coinbases to the wallet's first receive addresses, then enough blocks for
 * them to mature; the hot and cold wallets (issue 13) are paid from the
 * node's own coins, one output per receive address, in one block.
 */
async function fundWallet(
  node: DevNode,
  descriptorText: string,
  exchange: { readonly hot: string; readonly cold: string },
): Promise<void> {
  const parse = (text: string) => {
    const d = parseDescriptor(text, 'regtest');
    if (!d.ok) throw new CustosError(d.code, d.message);
    return d.value;
  };
  const descriptor = parse(descriptorText);
  for (let i = 0; i < FUNDING_BLOCKS; i++) await node.mineTo(deriveAddress(descriptor, 0, i).script, 1);
  await node.mine(COINBASE_MATURITY);
  const hot = parse(exchange.hot);
  const cold = parse(exchange.cold);
  for (let i = 0; i < HOT_COINS; i++) await node.fund(deriveAddress(hot, 0, i).script, HOT_COIN);
  for (let i = 0; i < COLD_COINS; i++) await node.fund(deriveAddress(cold, 0, i).script, COLD_COIN);
  await node.mine(1);
}

/**
 * `custos watch` as a child process (issue 12): the key of member watcher-1 (role watcher, its sealed
 * device key in the dev home), the node's RPC (its password written for it, 0600, on every start: the
 * node makes a new one each time), its record in the state folder, and an address picked on
 * 127.0.0.1, read from its first log line. It reads the chain from block 0 in the background.
 */
async function startWatcher(
  ctx: Context,
  folder: DevFolder,
  o: { coordinator: string; genesis: string; node: DevNode },
): Promise<Child> {
  writePrivate(folder.path('secrets', 'node-rpc.password'), `${o.node.rpcPassword}\n`);
  const config = folder.path('watcher.json');
  writeJson(config, {
    coordinatorUrl: o.coordinator,
    genesis: o.genesis,
    keyFile: join(new Home(folder.home).profileDir('watcher-1'), 'device.key'),
    passwordFile: folder.passwordFile('watcher-1'),
    record: 'watcher-record.json',
    bitcoin: {
      rpcUrl: o.node.rpcUrl,
      rpcUser: o.node.rpcUser,
      rpcPasswordFile: folder.path('secrets', 'node-rpc.password'),
    },
    listen: { host: '127.0.0.1', port: 0 },
    pollMs: 200,
  });
  const log = folder.path('logs', 'watcher.log');
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(process.execPath, [ctx.bin, 'watch', '--config', config], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const c: Child = { name: 'watcher', child, log, exited };
  const line = await waitForLog(c, '"event":"watcher.started"', 60_000);
  const url = /"url":"(http:\/\/[^"]+)"/.exec(line)?.[1];
  if (url === undefined)
    throw new CustosError('UNAVAILABLE', `the watcher did not say where it listens; see ${log}`);
  c.url = url;
  return c;
}

function startSigner(ctx: Context, folder: DevFolder, id: string): Child {
  const log = folder.path('logs', `${id}.log`);
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(
    process.execPath,
    [ctx.bin, 'signer', 'run', '--config', join(folder.signerDir(), `${id}.json`)],
    {
      stdio: ['ignore', fd, fd],
    },
  );
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { name: id, child, log, exited };
}

/** Waits for `text` in what `c` logs from now on; the line holding it. */
async function waitForLog(c: Child, text: string, timeoutMs: number): Promise<string> {
  const start = existsSync(c.log) ? readFileSync(c.log, 'utf8').length : 0;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const content = existsSync(c.log) ? readFileSync(c.log, 'utf8').slice(start) : '';
    const at = content.indexOf(text);
    if (at >= 0) {
      const end = content.indexOf('\n', at);
      return content.slice(content.lastIndexOf('\n', at) + 1, end < 0 ? undefined : end);
    }
    if (c.child.exitCode !== null || c.child.signalCode !== null) {
      throw new CustosError('UNAVAILABLE', `${c.name} exited while starting; see ${c.log}`);
    }
    if (Date.now() > deadline)
      throw new CustosError('UNAVAILABLE', `${c.name} did not start in time; see ${c.log}`);
    await sleep(100);
  }
}

async function stopChild(c: Child): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill('SIGTERM');
  const done = await Promise.race([c.exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
  if (!done) {
    c.child.kill('SIGKILL');
    await Promise.race([c.exited, sleep(STOP_TIMEOUT_MS)]);
  }
}

async function waitForBalance(url: string, home: Home, timeoutMs: number): Promise<string> {
  const viewer = await unlockDevice(home, 'watcher-1', { env: {} });
  const client = new CustosClient({ baseUrl: url, signer: memberSigner(viewer) });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wallets = await client.wallets().catch(() => []);
    const balance = wallets.find((w) => w.id === DEV_WALLET)?.balance ?? '0';
    if (BigInt(balance) > 0n) return balance;
    if (Date.now() > deadline) return balance;
    await sleep(250);
  }
}

function printNextSteps(
  ctx: Context,
  folder: DevFolder,
  d: {
    coordinator: string;
    relay: string;
    genesis: string;
    state: DevState;
    height: number;
    balance: string;
    children: readonly Child[];
    seconds: number;
    firstStart: boolean;
    evm: DevEvm | null;
    evmNote: string | null;
    safeBalances: string | null;
    exchangeBalances: ReadonlyMap<string, string> | null;
  },
): void {
  const safe = d.state.safe;
  const evmLines =
    d.evm !== null && safe !== undefined
      ? [
          `  evm chain     eip155:${d.evm.chainId} at ${d.evm.rpcUrl} (Hardhat, in memory: a restart deploys the Safe again, freshly funded)`,
          `  safe          ${safe.wallet} ${safe.address} (Safe 1.4.1, 2-of-3: signer-1, signer-2, offline backup), balances ${d.safeBalances ?? '(not reported)'}`,
          `  evm payee     eth-payee ${safe.payee} (address book); up to 1 ETH or 10,000 USDT: 1 approver`,
        ]
      : d.evmNote === null
        ? []
        : [`  evm           ${d.evmNote}`];
  const evmNext =
    d.evm !== null && safe !== undefined
      ? [
          `  npx custos request --as requester-1 --wallet ${safe.wallet} --asset usdt --to ${safe.payee.toLowerCase()} --amount 25usdt`,
        ]
      : [];
  const book = d.state.addresses;
  const small = book[0]!;
  // The exchange shape (issue 13): the hot wallet the demo backend pays out of, the cold one signed offline.
  const ex = d.state.exchange;
  const jobs = folder.coldJobs;
  const cold = join(folder.signerDir(), `${DEV_OFFLINE_SIGNER}.json`);
  const bal = (id: string) => formatSats(d.exchangeBalances?.get(id) ?? '0');
  const exchangeLines =
    ex === undefined
      ? ['  exchange      this deployment predates the exchange shape: `custos dev --reset` to get it']
      : [
          `  hot wallet    ${ex.hot} (2-of-3: signer-1, signer-2, ${ex.offlineSigner}), balance ${bal(ex.hot)}; paid out by`,
          `                ${ex.service} (service, sealed key ${folder.serviceKey}): any address, up to ${formatSats(PAYOUT_MAX)}, no approval, ${formatSats(HOT_HOURLY)} an hour`,
          `  cold wallet   ${ex.cold} (2-of-3: signer-1, ${ex.offlineSigner} OFFLINE, backup), balance ${bal(ex.cold)}`,
          `  transfers     refill ${ex.cold} → ${ex.hot}: 2 approvers; sweep ${ex.hot} → ${ex.cold}: 1 approver`,
          `  cold jobs     ${jobs} (the offline signer's job and result files)`,
        ];
  const exchangeNext =
    ex === undefined
      ? []
      : [
          '  npx custos demo payouts                       # the exchange backend: customer withdrawals',
          `  npx custos request --as requester-1 --wallet ${ex.cold} --to-wallet ${ex.hot} --amount 0.5btc --memo refill`,
          '  # after 2 approvals and signer-1, the cold wallet signature travels as files:',
          `  npx custos intents export <intent id> --as admin-1 --signer ${ex.offlineSigner} --out ${join(jobs, 'job.json')}`,
          `  npx custos signer offline --config ${cold} --job ${join(jobs, 'job.json')} --out ${join(jobs, 'result.json')}`,
          `  npx custos intents import ${join(jobs, 'result.json')} --as admin-1`,
        ];
  const lines = [
    '',
    `  DEVELOPMENT ONLY — demo keys whose passwords are in ${join(folder.dir, 'secrets')}`,
    '',
    `  node          bitcoin regtest, height ${d.height} (bcoin, chain in ${folder.chain})`,
    `  coordinator   ${d.coordinator} (SQLite ${folder.database})`,
    `  console       ${consoleUrl(d.coordinator)} (passkeys need the name localhost, not 127.0.0.1)`,
    `  metrics       ${d.coordinator}/metrics (Prometheus text; docs/api.md "Metrics")`,
    ...d.children.map(
      (c) =>
        `  ${c.name.padEnd(13)} pid ${c.child.pid}${c.name === 'signer-2' ? `, through the relay at ${d.relay}` : ''}${c.url === undefined ? '' : `, watcher-1 on its own RPC connection to the node: freezes ${c.url}/v1/freezes (the signers pull them), metrics ${c.url}/metrics`} (log ${c.log})`,
    ),
    `  backup key    ${join(folder.signerDir(), 'backup.key')}: the third key of the 2-of-3 wallet; keep this offline`,
    `  genesis       ${d.genesis}`,
    `  wallet        ${d.state.wallet} (2-of-3), balance ${formatSats(d.balance)}`,
    '  members       admin-1, admin-2 (admins, quorum 2), requester-1, approver-1..3, watcher-1',
    `  address book  ${book.map((a) => `${a.id} ${a.address}`).join('\n                ')}`,
    `  policy        up to ${formatSats(SMALL_MAX)}: 1 approver; above: 2 approvers, then a 2-minute cancel window`,
    ...evmLines,
    ...exchangeLines,
    '',
    `  ready in ${d.seconds.toFixed(1)} s${d.firstStart ? ' (first start: keys, organization and funding created)' : ' (resumed)'}`,
    '',
    'Next, in another terminal in this directory:',
    `  export CUSTOS_HOME=${folder.home}`,
    '  npx custos status',
    `  npx custos request --as requester-1 --wallet ${d.state.wallet} --to ${small.address} --amount 150000`,
    ...evmNext,
    '  npx custos approve <intent id> --as approver-1',
    ...exchangeNext,
    '  npx custos intents',
    '  npx custos audit verify',
    '  npx custos demo attacks',
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  ctx.io.out(`${lines.join('\n')}\n`);
}

/** The console's address: WebAuthn refuses IP addresses as RP IDs, so the browser is sent to localhost. */
function consoleUrl(coordinator: string): string {
  return `${coordinator.replace('://127.0.0.1:', '://localhost:')}/`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref()),
  ]);
}
