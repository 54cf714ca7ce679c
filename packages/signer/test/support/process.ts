/**
 * Runs the real signer process (`custos signer init` and `custos signer run`)
 * for tests, the way an operator would: a keystore made by the CLI, a config
 * file, a password in the environment, and the process talking to a
 * coordinator over HTTP on 127.0.0.1.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DescriptorKey } from '@custos/bitcoin';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;
export const PASSWORD = 'correct horse battery staple';

export interface KeystoreInfo {
  readonly id: string;
  readonly identityKey: string;
  readonly descriptorKey: DescriptorKey;
  readonly path: string;
}

function nodeArgs(args: readonly string[]): string[] {
  return ['--import', 'tsx', MAIN, ...args];
}

/** `custos signer init`, through the real command line. scrypt cost is lowered for test speed only. */
export async function initKeystore(dir: string, id: string): Promise<KeystoreInfo> {
  const path = join(dir, `${id}.key`);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    nodeArgs([
      'signer',
      'init',
      '--id',
      id,
      '--keystore',
      path,
      '--network',
      'regtest',
      '--scrypt-log-n',
      '12',
    ]),
    { env: { ...process.env, CUSTOS_SIGNER_PASSWORD: PASSWORD } },
  );
  const pub = JSON.parse(stdout) as {
    id: string;
    identityKey: string;
    fingerprint: string;
    path: string;
    xpub: string;
  };
  return {
    id: pub.id,
    identityKey: pub.identityKey,
    descriptorKey: { fingerprint: pub.fingerprint, path: pub.path, xpub: pub.xpub },
    path,
  };
}

export function writeConfig(dir: string, id: string, coordinatorUrl: string, genesis: string): string {
  const file = join(dir, `${id}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      id,
      coordinatorUrl,
      genesis,
      keystore: `${id}.key`,
      database: `${id}.db`,
      chains: ['bitcoin:regtest'],
      waitMs: 200,
    }),
  );
  return file;
}

export interface RunningSigner {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

export function runSigner(configFile: string): RunningSigner {
  const child = spawn(process.execPath, nodeArgs(['signer', 'run', '--config', configFile]), {
    env: { ...process.env, CUSTOS_SIGNER_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Waits until the process prints `event` (bounded). */
export async function waitForOutput(s: RunningSigner, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!s.output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`signer did not print ${text}; output:\n${s.output()}`);
    if (s.child.exitCode !== null) throw new Error(`signer exited (${s.child.exitCode}):\n${s.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `custos signer <args>` run to completion (e.g. `status --config <file> --json`): its exit code and output. */
export async function signerCli(
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, nodeArgs(['signer', ...args]));
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
