/**
 * Child processes for tests and benches, one way: a Node.js process run to
 * completion (exit code, stdout, stderr) or left running with its output
 * collected and waited on. The CLI (`custos`), the signer (`custos signer`)
 * and the dev deployment are all started through these.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Added to the environment (undefined removes a variable); see {@link childEnv}. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Written to stdin, then closed (stdin is otherwise empty, never a terminal). */
  readonly input?: string;
  readonly timeoutMs?: number;
}

/** `node <argv>`; resolves when it exits (killed after `timeoutMs`, default 60 s). */
export function runNode(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...argv], {
      cwd: opts.cwd ?? process.cwd(),
      env: childEnv(opts.env),
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

/** A long-running child with its stdout and stderr collected together. */
export interface Running {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
  /** Resolves with the match once the output has `text` (bounded; fails if the process exits first). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<string>;
}

/** `node <argv>` left running; `name` is how errors call it. */
export function startNode(name: string, argv: readonly string[], opts: RunOptions = {}): Running {
  const child = spawn(process.execPath, [...argv], {
    cwd: opts.cwd ?? process.cwd(),
    env: childEnv(opts.env),
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
        if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}):\n${out}`);
        if (Date.now() > deadline) throw new Error(`${name} did not print ${String(text)}:\n${out}`);
        await sleep(25);
      }
    },
  };
}

/** The environment of a child: this one without the variables that would point it at another home. */
export function childEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
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
    entries = readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e));
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

/** Whether `pid` is a running process (a zombie waiting to be reaped counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
