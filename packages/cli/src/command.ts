/**
 * The shape of a command: its words, its help (with an example, always), its
 * options and what it does. main.ts dispatches on the words; `--help` on any
 * command prints its usage and exits 0.
 */
import type { Args, OptionSpecs } from './args.js';
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
  run(ctx: Context, args: Args): Promise<number>;
  /** For commands that hand their words on untouched (custos signer ...): replaces parsing and run. */
  readonly runRaw?: (ctx: Context, argv: readonly string[]) => Promise<number>;
}

/** The options every command understands, for the help texts. */
export const COMMON_HELP = `Common options:
  --as <profile>          act as this local identity (a profile under the custos home; --profile is the same)
  --coordinator <url>     the coordinator (else CUSTOS_COORDINATOR, else config.json)
  --genesis <digest>      the pinned genesis digest (else CUSTOS_GENESIS, else config.json)
  --password-file <file>  the device key password (else CUSTOS_PASSWORD, else a prompt)
  --json                  machine-readable output
  -h, --help              this text
`;
