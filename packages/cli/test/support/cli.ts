/**
 * Runs the real `custos` executable (bin/custos.js, TypeScript through tsx)
 * as a child process, the way a person or a script would: arguments, an
 * environment, stdin, and the exit code, stdout and stderr it gives back.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const BIN = new URL('../../bin/custos.js', import.meta.url).pathname;

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Written to stdin, then closed (stdin is otherwise empty, never a terminal). */
  readonly input?: string;
  readonly timeoutMs?: number;
}

/** `custos <args>`; resolves when it exits (killed after `timeoutMs`). */
export function custos(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? process.cwd(),
      env: cleanEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
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
export interface Running {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<string>;
}

export function start(args: readonly string[], opts: CliOptions = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: cleanEnv(opts.env),
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
  return {
    child,
    output: () => out,
    exited,
    async waitFor(text, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = typeof text === 'string' ? (out.includes(text) ? text : null) : text.exec(out)?.[0];
        if (m !== null && m !== undefined) return m;
        if (child.exitCode !== null)
          throw new Error(`custos ${args.join(' ')} exited (${child.exitCode}):\n${out}`);
        if (Date.now() > deadline)
          throw new Error(`custos ${args.join(' ')} did not print ${String(text)}:\n${out}`);
        await sleep(50);
      }
    },
  };
}

/** The environment of a child: this one without the variables that would point it at another home. */
function cleanEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of [
    'CUSTOS_HOME',
    'CUSTOS_PASSWORD',
    'CUSTOS_COORDINATOR',
    'CUSTOS_GENESIS',
    'CUSTOS_SIGNER_PASSWORD',
  ]) {
    delete env[k];
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value (not undefined), bounded. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** Every descendant process of `pid` (Linux /proc), for checking that a stop left none behind. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirProc();
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function readdirProc(): string[] {
  return readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e));
}

/** Whether `pid` is a running process (a zombie waiting to be reaped counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
