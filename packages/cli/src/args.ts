/**
 * Command-line parsing on node:util parseArgs (no dependency): strict, so a
 * misspelt option is a usage error (exit 2) rather than silently ignored, which
 * matters when the option is `--yes` or `--amount`.
 *
 * Values come back untyped from parseArgs; the accessors below give each
 * command typed values and one place to say what is missing.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './output.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Options every command takes. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  as: { type: 'string' },
  profile: { type: 'string' },
  coordinator: { type: 'string' },
  genesis: { type: 'string' },
  'password-file': { type: 'string' },
} as const satisfies OptionSpecs;

export class Args {
  constructor(
    private readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>,
    readonly positionals: readonly string[],
  ) {}

  str(name: string): string | undefined {
    const v = this.values[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new UsageError(`--${name} takes a value`);
    return v;
  }

  required(name: string, what = 'a value'): string {
    const v = this.str(name);
    if (v === undefined || v === '') throw new UsageError(`--${name} is required (${what})`);
    return v;
  }

  list(name: string): string[] {
    const v = this.values[name];
    if (v === undefined) return [];
    const items = Array.isArray(v) ? v : [v];
    return items.flatMap((x) => (typeof x === 'string' ? x.split(',') : [])).filter((x) => x !== '');
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  int(name: string, opts: { min?: number; max?: number } = {}): number | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    if (!/^(0|[1-9][0-9]{0,15})$/.test(v)) throw new UsageError(`--${name} must be a whole number`);
    const n = Number(v);
    if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
      throw new UsageError(`--${name} must be between ${opts.min ?? 0} and ${opts.max ?? 'any'}`);
    }
    return n;
  }

  positional(index: number, what: string): string {
    const v = this.positionals[index];
    if (v === undefined || v === '') throw new UsageError(`missing ${what}`);
    return v;
  }
}

/** Parses `argv` against the command's options plus the common ones. Throws UsageError. */
export function parse(argv: readonly string[], options: OptionSpecs, maxPositionals = 0): Args {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...COMMON_OPTIONS, ...options },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const unknown = /Unknown option '([^']+)'/.exec(message);
    throw new UsageError(
      unknown !== null ? `unknown option ${unknown[1]}` : message.split('\n')[0]!.replace(/\.$/, ''),
    );
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}`);
  }
  return new Args(parsed.values, parsed.positionals);
}

/**
 * A duration like `90s`, `15m`, `1h`, `2d` or plain milliseconds, to milliseconds.
 * @example parseDuration('1h') === 3_600_000
 */
export function parseDuration(text: string, name: string): number {
  const m = /^([0-9]{1,9})(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`--${name} must be a duration such as 90s, 15m, 1h or 2d`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1;
  return n * factor;
}

/**
 * An amount in satoshi: a whole number (`150000`), or BTC with a unit
 * (`0.0015btc`), never a float computed in binary.
 */
export function parseSats(text: string): string {
  const t = text.trim().toLowerCase();
  const btc = /^([0-9]{1,8})(?:\.([0-9]{1,8}))?\s*btc$/.exec(t);
  if (btc !== null) {
    const sats = BigInt(btc[1]!) * 100_000_000n + BigInt((btc[2] ?? '').padEnd(8, '0') || '0');
    return sats.toString();
  }
  const sat = /^([1-9][0-9]{0,15})\s*(?:sats?)?$/.exec(t);
  if (sat === null)
    throw new UsageError('--amount must be satoshi (150000) or BTC with its unit (0.0015btc)');
  return sat[1]!;
}
