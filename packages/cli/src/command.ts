/**
 * The shape of a command: its words, its help (with an example, always), its
 * options and what it does. main.ts dispatches on the words; `--help` on any
 * command prints its usage and exits 0.
 */
import type { Args, COMMON_OPTIONS, OptionSpecs } from './args.js';
import type { Context } from './context.js';

export interface Command {
  /** The words that name it, e.g. "keys new". */
  readonly name: string;
  readonly summary: string;
  /** Usage, options and at least one example. */
  readonly help: string;
  readonly options: OptionSpecs;
  /** How many positional arguments it takes (default 0). */
  readonly positionals?: number;
  /** Which of the common options it takes (default all); any other is an unknown option. */
  readonly common?: readonly CommonOption[];
  run(ctx: Context, args: Args): Promise<number>;
  /** For commands that hand their words on untouched (custos signer ...): replaces parsing and run. */
  readonly runRaw?: (ctx: Context, argv: readonly string[]) => Promise<number>;
}

export type CommonOption = keyof typeof COMMON_OPTIONS;

const COMMON_LINES: Readonly<Record<CommonOption, string>> = {
  as: '  --as <profile>          act as this local identity (a profile under the custos home; --profile is the same)',
  profile: '',
  coordinator: '  --coordinator <url>     the coordinator (else CUSTOS_COORDINATOR, else config.json)',
  genesis: '  --genesis <digest>      the pinned genesis digest (else CUSTOS_GENESIS, else config.json)',
  'password-file': '  --password-file <file>  the device key password (else CUSTOS_PASSWORD, else a prompt)',
  json: '  --json                  machine-readable output, errors included ({"error": {"code", "message", "detail"}} on stderr)',
  help: '  -h, --help              this text',
};

/** The help lines of the common options a command takes. */
export function commonHelp(names: readonly CommonOption[]): string {
  const lines = names.map((n) => COMMON_LINES[n]).filter((l) => l !== '');
  return `${names.length > 1 ? 'Common options' : 'Options every command takes'}:\n${lines.join('\n')}\n`;
}

/** The options every command understands, for the help texts. */
export const COMMON_HELP = commonHelp(['as', 'coordinator', 'genesis', 'password-file', 'json', 'help']);
