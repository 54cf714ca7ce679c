/**
 * Runs the real `custos` executable (packages/cli/bin/custos.js, TypeScript
 * through tsx) as a child process, the way a person or a script would:
 * arguments, an environment, stdin, and the exit code, stdout and stderr it
 * gives back (process.ts).
 */
import { type Running, type RunOptions, type RunResult, runNode, startNode } from './process.js';

export { alive, descendants, eventually, type Running, sleep } from './process.js';

export const BIN = new URL('../../cli/bin/custos.js', import.meta.url).pathname;

export type CliResult = RunResult;
export type CliOptions = RunOptions;

/** `custos <args>`; resolves when it exits (killed after `timeoutMs`). */
export function custos(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return runNode([BIN, ...args], opts);
}

/** Like {@link custos}, but fails the test unless it exits 0; returns stdout. */
export async function ok(args: readonly string[], opts: CliOptions = {}): Promise<string> {
  const r = await custos(args, opts);
  if (r.code !== 0) {
    throw new Error(`custos ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.stdout;
}

/** A long-running `custos` (serve, signer run, dev) with its output collected. */
export function start(args: readonly string[], opts: CliOptions = {}): Running {
  return startNode(`custos ${args.join(' ')}`, [BIN, ...args], opts);
}
