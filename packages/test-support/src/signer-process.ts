/**
 * Runs the real signer process (`custos signer init` and `custos signer run`)
 * for tests, the way an operator would: a keystore made by the CLI, a config
 * file, a password in the environment, and the process talking to a
 * coordinator over HTTP on 127.0.0.1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DescriptorKey } from '@custos/bitcoin';
import { type Running, runNode, startNode } from './process.js';

const MAIN = new URL('../../signer/src/main.ts', import.meta.url).pathname;
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
  const { code, stdout, stderr } = await runNode(
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
    { env: { CUSTOS_SIGNER_PASSWORD: PASSWORD } },
  );
  if (code !== 0) throw new Error(`custos signer init exited ${code}: ${stderr}`);
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

/** A running `custos signer run`. */
export type RunningSigner = Running;

export function runSigner(configFile: string): RunningSigner {
  return startNode('signer', nodeArgs(['signer', 'run', '--config', configFile]), {
    env: { CUSTOS_SIGNER_PASSWORD: PASSWORD },
  });
}

/** Waits until the process prints `text` (bounded). */
export async function waitForOutput(s: RunningSigner, text: string, timeoutMs = 30_000): Promise<void> {
  await s.waitFor(text, timeoutMs);
}

/**
 * `custos signer <args>` run to completion (e.g. `status --config <file> --json`): its exit code and
 * output. `opts` adds to its environment (the password for commands that unlock the keystore) or
 * types on its standard input.
 */
export async function signerCli(
  args: readonly string[],
  opts: { readonly env?: Readonly<Record<string, string>>; readonly input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runNode(nodeArgs(['signer', ...args]), opts);
  return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
}
