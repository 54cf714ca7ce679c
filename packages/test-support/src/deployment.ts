/**
 * A whole deployment stood up through the command line, as operators and
 * members would: device keys with `custos keys new`, signer keystores with
 * `custos signer init`, the organization with `custos init`, the coordinator
 * with `custos serve` (SQLite), two `custos signer run` processes of a 2-of-3
 * wallet (the third key an offline backup), over a real bcoin regtest node.
 * Real keys, real signatures, real transactions: nothing is mocked.
 *
 * scrypt costs are lowered (--scrypt-log-n 12) for test speed only.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveAddress, parseDescriptor, scriptToAddress } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import { sha256, utf8 } from '@custos/core';
import { custos, eventually, ok, type Running, start } from './cli.js';

export const PASSWORD = 'a test password, not a real one';
export const SIGNER_PASSWORD = 'a signer test password';

export interface Deployment {
  readonly dir: string;
  readonly home: string;
  readonly node: RegtestNode;
  readonly coordinatorUrl: string;
  readonly genesis: string;
  readonly database: string;
  readonly descriptor: string;
  readonly cold: string;
  readonly exchange: string;
  /** The funding transaction of the wallet's first coin: what a tampering test rebuilds from. */
  readonly funding: {
    readonly txid: string;
    readonly vout: number;
    readonly raw: Uint8Array;
    readonly value: bigint;
  };
  readonly env: Readonly<Record<string, string>>;
  /** The running `custos signer run` processes by id (an offline signer has none): their output is their log. */
  readonly signers: Readonly<Record<string, Running>>;
  /** `custos <args>` as a member of this deployment (CUSTOS_HOME and password set). */
  cli(args: readonly string[], input?: string): ReturnType<typeof custos>;
  ok(args: readonly string[]): Promise<string>;
  /** `custos request` by requester-1 from btc-main to the cold-storage address; the new intent's id. */
  request(amount: string, memo: string): Promise<string>;
  /** `custos intents <id> --json` as admin-1, parsed: the shape is the caller's to name. */
  show<T = unknown>(id: string): Promise<T>;
  stop(): Promise<void>;
}

/** A regtest P2WPKH address nobody holds the key of. */
export function testAddress(label: string): string {
  const program = sha256(utf8(`custos cli test ${label}`)).slice(0, 20);
  return scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest')!;
}

export interface DeploymentOptions {
  /**
   * Signers whose config is written but whose process is not started: they
   * never poll (cold storage, issue 13), and their jobs go through job files
   * (`custos intents export`, `custos signer offline`, `custos intents import`).
   */
  readonly offline?: readonly ('signer-1' | 'signer-2')[];
  /** The governance delay (`custos init --delay`, default 1h); the console test adds passkeys and waits it out. */
  readonly delay?: string;
  /** A built approver console for `custos serve` to serve at / (CUSTOS_CONSOLE_DIR). */
  readonly consoleDir?: string;
  /**
   * Adds member `watcher-1` with the `watcher` role (issue 12); its sealed
   * device key is `<home>/profiles/watcher-1/device.key`, under PASSWORD.
   */
  readonly watcher?: boolean;
  /** Webhook targets for `custos serve` (CUSTOS_WEBHOOKS), e.g. an admin's receiver on 127.0.0.1. */
  readonly webhooks?: readonly { url: string; secret: string; events?: readonly string[] }[];
  /**
   * Members added after the default ones, each with a sealed device key under PASSWORD at
   * `<home>/profiles/<id>/device.key`: e.g. a service requester of an automated rule (issue 13).
   */
  readonly members?: readonly { readonly id: string; readonly roles: readonly string[] }[];
  /** The genesis policy (`custos init --policy`); absent: init's default (address book, 2 approvers). */
  readonly policy?: unknown;
  /** Watcher URLs every signer pulls signed freezes from (`watchers` in its config, issue 12). */
  readonly signerWatchers?: readonly string[];
}

export async function startDeployment(opts: DeploymentOptions = {}): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'custos-cli-'));
  const home = join(dir, 'home');
  const env = { CUSTOS_HOME: home, CUSTOS_PASSWORD: PASSWORD, CUSTOS_SIGNER_PASSWORD: SIGNER_PASSWORD };
  const running: Running[] = [];
  const node = await startRegtestNode();
  try {
    await node.activateSegwit();
    const people = [
      ['admin-1', []],
      ['admin-2', []],
      ['requester-1', ['requester']],
      ['approver-1', ['approver']],
      ['approver-2', ['approver']],
      ['approver-3', ['approver']],
      ...(opts.watcher === true ? ([['watcher-1', ['watcher']]] as const) : []),
      ...(opts.members ?? []).map((m) => [m.id, m.roles] as const),
    ] as const;
    await Promise.all([
      ...people.map(([id]) =>
        ok(['keys', 'new', '--member', id, '--device', `${id}-laptop`, '--scrypt-log-n', '12'], { env }),
      ),
      ...['signer-1', 'signer-2', 'backup'].map((id) =>
        ok(
          [
            'signer',
            'init',
            '--id',
            id,
            '--keystore',
            join(dir, `${id}.key`),
            '--network',
            'regtest',
            '--scrypt-log-n',
            '12',
          ],
          { env },
        ).then((out) => writeFileSync(join(dir, `${id}.pub.json`), out)),
      ),
    ]);
    const shown = await Promise.all(
      people.map(async ([id, roles]) => ({
        ...JSON.parse(await ok(['keys', 'show', '--as', id, '--json'], { env })),
        roles,
      })),
    );
    writeFileSync(join(dir, 'admins.json'), JSON.stringify(shown.filter((p) => p.id.startsWith('admin'))));
    writeFileSync(join(dir, 'members.json'), JSON.stringify(shown.filter((p) => !p.id.startsWith('admin'))));
    const cold = testAddress('cold storage');
    const exchange = testAddress('exchange');
    writeFileSync(
      join(dir, 'book.json'),
      JSON.stringify([
        { id: 'cold-storage', chain: 'bitcoin:regtest', address: cold, label: 'Cold storage' },
        { id: 'exchange', chain: 'bitcoin:regtest', address: exchange, label: 'Exchange deposit' },
      ]),
    );
    if (opts.policy !== undefined) writeFileSync(join(dir, 'policy.json'), JSON.stringify(opts.policy));

    // The coordinator, through `custos serve --config`.
    writeFileSync(join(dir, 'rpc.password'), `${node.rpcPassword}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'coordinator.json'),
      JSON.stringify({
        host: '127.0.0.1',
        port: 0,
        sqlite: 'coordinator.db',
        bitcoin: { rpcUrl: node.rpcUrl, rpcUser: node.rpcUser, rpcPasswordFile: 'rpc.password' },
        logLevel: 'warn',
      }),
    );
    const serve = start(['serve', '--config', join(dir, 'coordinator.json')], {
      env: {
        ...env,
        ...(opts.consoleDir === undefined ? {} : { CUSTOS_CONSOLE_DIR: opts.consoleDir }),
        ...(opts.webhooks === undefined ? {} : { CUSTOS_WEBHOOKS: JSON.stringify(opts.webhooks) }),
      },
    });
    running.push(serve);
    const coordinatorUrl = (await serve.waitFor(/listening on http:\/\/127\.0\.0\.1:[0-9]+/))
      .split(' ')
      .at(-1)!;

    // The organization, through `custos init`, signed by both admins' local profiles.
    const backupPub = JSON.parse(readFileSync(join(dir, 'backup.pub.json'), 'utf8')) as {
      fingerprint: string;
      path: string;
      xpub: string;
    };
    const genesis = (
      await ok(
        [
          'init',
          '--name',
          'CLI Test Custody',
          '--admins',
          join(dir, 'admins.json'),
          '--members',
          join(dir, 'members.json'),
          '--signers',
          `${join(dir, 'signer-1.pub.json')},${join(dir, 'signer-2.pub.json')}`,
          '--signer-xpubs',
          `[${backupPub.fingerprint}/${backupPub.path}]${backupPub.xpub}`,
          '--threshold',
          '2',
          '--network',
          'regtest',
          '--addresses',
          join(dir, 'book.json'),
          ...(opts.policy === undefined ? [] : ['--policy', join(dir, 'policy.json')]),
          '--delay',
          opts.delay ?? '1h',
          '--coordinator',
          coordinatorUrl,
          '--yes',
        ],
        { env },
      )
    ).trim();

    // The two signers, each with its own keystore and database.
    const signers: Record<string, Running> = {};
    for (const id of ['signer-1', 'signer-2']) {
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({
          id,
          coordinatorUrl,
          genesis,
          keystore: `${id}.key`,
          database: `${id}.db`,
          chains: ['bitcoin:regtest'],
          waitMs: 1000,
          ...(opts.signerWatchers === undefined
            ? {}
            : { watchers: opts.signerWatchers.map((url) => ({ url })) }),
        }),
      );
      if (opts.offline?.includes(id as 'signer-1' | 'signer-2') === true) continue;
      const signer = start(['signer', 'run', '--config', join(dir, `${id}.json`)], { env });
      running.push(signer);
      signers[id] = signer;
    }
    await Promise.all(running.slice(1).map((s) => s.waitFor('signer.started')));

    // Fund the wallet's first receive address, as an exchange's customer would.
    const shownState = JSON.parse(await ok(['governance', 'show', '--as', 'admin-1', '--json'], { env })) as {
      state: { wallets: { descriptor: string }[] };
    };
    const descriptor = shownState.state.wallets[0]!.descriptor;
    const parsed = parseDescriptor(descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const value = 100_000_000n;
    const funded = await node.fund(deriveAddress(parsed.value, 0, 0).script, value);
    await node.mine(1);
    await eventually(async () => {
      const s = await custos(['status', '--as', 'admin-1', '--json'], { env });
      if (s.code !== 0) return undefined;
      const w = (JSON.parse(s.stdout) as { wallets: { balance: string | null }[] }).wallets[0];
      return w?.balance !== null && w?.balance !== undefined && BigInt(w.balance) > 0n ? true : undefined;
    }, 'the coordinator to see the funded wallet');

    const stop = async (): Promise<void> => {
      for (const r of running.reverse()) {
        if (r.child.exitCode === null) r.child.kill('SIGTERM');
        await Promise.race([r.exited, new Promise((res) => setTimeout(res, 10_000))]);
        if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
      }
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return {
      dir,
      home,
      node,
      coordinatorUrl,
      genesis,
      database: join(dir, 'coordinator.db'),
      descriptor,
      cold,
      exchange,
      funding: { ...funded, value },
      env,
      signers,
      cli: (args, input) => custos(args, input === undefined ? { env } : { env, input }),
      ok: (args) => ok(args, { env }),
      request: async (amount, memo) => {
        const args = ['request', '--as', 'requester-1', '--wallet', 'btc-main', '--to', cold];
        const id = (await ok([...args, '--amount', amount, '--memo', memo], { env })).trim();
        if (!/^[0-9a-f]{64}$/.test(id))
          throw new Error(`custos request printed ${JSON.stringify(id)}, not an intent id`);
        return id;
      },
      show: async <T>(id: string) =>
        JSON.parse(await ok(['intents', id, '--as', 'admin-1', '--json'], { env })) as T,
      stop,
    };
  } catch (err) {
    for (const r of running) r.child.kill('SIGKILL');
    await node.close();
    throw err;
  }
}

/**
 * Writes `<dir>/<name>.json`, a `custos watch` config holding watcher-1's
 * sealed key (the deployment must have `watcher: true`) and the deployment's
 * node over RPC, its password file beside it; `extra` adds or replaces keys
 * (`listen`, `pollMs`, `bitcoin` with `zmq`...). Returns the config's path.
 */
export function writeWatcherConfig(
  d: Deployment,
  extra: Readonly<Record<string, unknown>> = {},
  name = 'watcher',
): string {
  writeFileSync(join(d.dir, 'watcher.password'), `${PASSWORD}\n`, { mode: 0o600 });
  const path = join(d.dir, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      coordinatorUrl: d.coordinatorUrl,
      genesis: d.genesis,
      keyFile: join(d.home, 'profiles', 'watcher-1', 'device.key'),
      passwordFile: 'watcher.password',
      record: `${name}-record.json`,
      bitcoin: { rpcUrl: d.node.rpcUrl, rpcUser: d.node.rpcUser, rpcPasswordFile: 'rpc.password' },
      ...extra,
    }),
  );
  return path;
}

/** The runbook's last step after a freeze: admin-1 proposes `unfreeze`, admin-2 approves; throws if either is refused. */
export async function unfreeze(d: Deployment, reason: string): Promise<void> {
  const proposed = await d.cli([
    'governance',
    'propose',
    'unfreeze',
    '--as',
    'admin-1',
    '--body',
    JSON.stringify({ reason }),
    '--yes',
  ]);
  if (proposed.code !== 0) throw new Error(`unfreeze proposal refused: ${proposed.stderr}`);
  const id = proposed.stdout.trim().split('\n').at(-1)!;
  const approved = await d.cli(['governance', 'approve', id, '--as', 'admin-2', '--yes']);
  if (approved.code !== 0) throw new Error(`unfreeze approval refused: ${approved.stderr}`);
}
