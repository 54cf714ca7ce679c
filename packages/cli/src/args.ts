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

/** Parses `argv` against the command's options plus the common ones it takes (default all). Throws UsageError. */
export function parse(
  argv: readonly string[],
  options: OptionSpecs,
  maxPositionals = 0,
  common: readonly (keyof typeof COMMON_OPTIONS)[] = Object.keys(
    COMMON_OPTIONS,
  ) as (keyof typeof COMMON_OPTIONS)[],
): Args {
  let parsed: ReturnType<typeof parseArgs>;
  const shared: Record<string, OptionSpec> = {};
  for (const name of common) shared[name] = COMMON_OPTIONS[name];
  const all: OptionSpecs = { ...shared, ...options };
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv, all),
      options: all,
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
 * `--amount -5` as `--amount=-5`: parseArgs takes a value starting with a
 * dash for an option ("argument is ambiguous"), but a negative number after
 * an option that takes a value is that option's value, and the command says
 * what is wrong with it.
 */
function joinNegativeValues(argv: readonly string[], options: OptionSpecs): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (
      name !== undefined &&
      options[name]?.type === 'string' &&
      next !== undefined &&
      /^-[0-9.]/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
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

/** All the bitcoin there will ever be, in satoshi (21 million BTC). */
const MAX_SATS = 21_000_000n * 100_000_000n;
/** Decimal places of a BTC amount: a satoshi is 0.00000001 BTC. */
const BTC_DECIMALS = 8;

/**
 * An amount in satoshi: a whole number (`150000`), or BTC with its unit
 * (`0.0015btc`), never a float computed in binary. Each way to get it wrong
 * has its own sentence: negative, zero, more decimals than the asset has,
 * more than 21 million BTC, or not a number.
 */
export function parseSats(text: string): string {
  const t = text.trim().toLowerCase().replace(/\s+/g, '');
  const m = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(btc|sats?)?$/.exec(t);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) {
    throw new UsageError(
      `--amount ${JSON.stringify(text)} is not an amount: give satoshi (150000) or BTC with its unit (0.0015btc)`,
    );
  }
  const [, sign, whole = '', frac = '', unit] = m;
  const btc = unit === 'btc';
  const decimals = frac.replace(/0+$/, '');
  if (!btc && decimals !== '') {
    throw new UsageError(
      `--amount ${text} has decimals, but satoshi is the smallest unit: give a whole number of satoshi, or BTC with its unit (${text}btc)`,
    );
  }
  if (btc && decimals.length > BTC_DECIMALS) {
    throw new UsageError(
      `--amount ${text} has ${decimals.length} decimals, more than BTC has (${BTC_DECIMALS}: 1 satoshi is 0.00000001 BTC)`,
    );
  }
  const sats = btc
    ? BigInt(whole || '0') * 100_000_000n + BigInt(decimals.padEnd(BTC_DECIMALS, '0') || '0')
    : BigInt(whole || '0');
  if (sign === '-' && sats !== 0n)
    throw new UsageError(`--amount ${text} is negative: an amount to send is more than zero`);
  if (sats === 0n) throw new UsageError(`--amount ${text} is zero: an amount to send is more than zero`);
  if (sats > MAX_SATS) {
    throw new UsageError(`--amount ${text} is more than 21,000,000 BTC, all the bitcoin there will ever be`);
  }
  return sats.toString();
}

/**
 * An amount of a registered asset, with the asset's decimals: a whole number
 * of base units (`25000000`), or a decimal with the asset's unit, its id or
 * symbol in any case (`25usdt`, `25.5 USDT`, `0.1eth`). Another unit, more
 * decimals than the asset has, zero or a negative amount are usage errors.
 * Returns base units as a canonical decimal string.
 */
export function parseAssetAmount(
  text: string,
  asset: { readonly id: string; readonly symbol: string; readonly decimals: number },
): string {
  const t = text.trim().toLowerCase().replace(/\s+/g, '');
  const m = /^([0-9]*)(?:\.([0-9]*))?([a-z][a-z0-9._-]*)?$/.exec(t);
  const example = `${asset.id} base units (25000000) or ${asset.symbol} with its unit (25${asset.id})`;
  if (m === null || (m[1] === '' && (m[2] ?? '') === '')) {
    throw new UsageError(`--amount ${JSON.stringify(text)} is not an amount: give ${example}`);
  }
  const [, whole = '', frac = '', unit] = m;
  if (unit !== undefined && unit !== asset.id.toLowerCase() && unit !== asset.symbol.toLowerCase()) {
    throw new UsageError(`--amount ${text} is in ${unit}, but the asset is ${asset.id} (${asset.symbol})`);
  }
  const decimals = frac.replace(/0+$/, '');
  if (unit === undefined && decimals !== '') {
    throw new UsageError(
      `--amount ${text} has decimals, but without a unit it is in base units: give ${text}${asset.id}`,
    );
  }
  if (decimals.length > asset.decimals) {
    throw new UsageError(
      `--amount ${text} has ${decimals.length} decimals, more than ${asset.symbol} has (${asset.decimals})`,
    );
  }
  const base =
    unit === undefined
      ? BigInt(whole || '0')
      : BigInt(whole || '0') * 10n ** BigInt(asset.decimals) +
        BigInt(decimals.padEnd(asset.decimals, '0') || '0');
  if (base === 0n) throw new UsageError(`--amount ${text} is zero: an amount to send is more than zero`);
  return base.toString();
}
