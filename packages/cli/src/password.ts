/**
 * Where the password that unseals a device key comes from, in this order:
 *  1. --password-file <file> (first line);
 *  2. the profile's passwordFile, which only `custos dev` writes (demo keys,
 *     development only);
 *  3. the CUSTOS_PASSWORD environment variable (scripts, CI);
 *  4. a prompt on the terminal with echo off, when stdin is a TTY.
 *
 * Never from a command-line value: other users of the host can read argv
 * (/proc/<pid>/cmdline). The password is never printed or logged, and a
 * wrong one is reported as BAD_PASSWORD without saying more.
 */
import { readFileSync } from 'node:fs';
import { CustosError } from '@custos/core';
import type { Env } from './home.js';

export interface PasswordSources {
  readonly passwordFile?: string | undefined;
  readonly profilePasswordFile?: string | undefined;
  readonly env: Env;
  /** What the prompt asks for, e.g. "password for approver-1/laptop". */
  readonly prompt: string;
  /** Ask twice on a terminal (new keys). */
  readonly confirm?: boolean;
}

export async function readPassword(src: PasswordSources): Promise<string> {
  const file = src.passwordFile ?? src.profilePasswordFile;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new CustosError('INVALID_VALUE', `cannot read the password file ${file}`);
    }
    const first = text.split(/\r?\n/)[0] ?? '';
    if (first === '') throw new CustosError('INVALID_VALUE', `the password file ${file} is empty`);
    return first;
  }
  const fromEnv = src.env.CUSTOS_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!process.stdin.isTTY) {
    throw new CustosError(
      'INVALID_VALUE',
      'no password: set CUSTOS_PASSWORD, pass --password-file <file>, or run in a terminal',
    );
  }
  const first = await promptHidden(`${src.prompt}: `);
  if (first === '') throw new CustosError('INVALID_VALUE', 'the password is empty');
  if (src.confirm === true) {
    const again = await promptHidden('again: ');
    if (again !== first) throw new CustosError('INVALID_VALUE', 'the two passwords differ');
  }
  return first;
}

/** Reads one line from the terminal without echoing it. Ctrl-C aborts the command (exit 130). */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve) => {
    let value = '';
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    const done = (): void => {
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          process.exit(130);
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * Asks a yes/no question on stderr and reads the answer from stdin (a
 * terminal or a pipe). Only "y" or "yes" is a yes; anything else, including
 * end of input, is a no.
 */
export async function confirm(question: string): Promise<boolean> {
  process.stderr.write(`${question} [y/N] `);
  const answer = await readLine();
  return /^\s*y(es)?\s*$/i.test(answer ?? '');
}

function readLine(): Promise<string | null> {
  const stdin = process.stdin;
  return new Promise((resolve) => {
    let buffer = '';
    const finish = (value: string | null): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause();
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8');
      const nl = buffer.indexOf('\n');
      if (nl >= 0) finish(buffer.slice(0, nl));
    };
    const onEnd = (): void => finish(buffer === '' ? null : buffer);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
