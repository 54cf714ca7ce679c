/**
 * `custos`: one command for every role.
 *
 *   requester  custos request
 *   approver   custos approve | reject | intents
 *   admin      custos init | governance propose | governance approve
 *   anyone     custos status | governance show | audit verify | keys | config
 *   operator   custos serve | signer init | signer run
 *   developer  custos dev | demo attacks
 *
 * Exit codes: 0 done, 1 refused or failed (the stable code and a sentence on
 * stderr), 2 the command line was wrong. `custos <command> --help` prints the
 * command's usage with an example.
 */
import { fileURLToPath } from 'node:url';
import { parse } from './args.js';
import type { Command } from './command.js';
import { auditVerify } from './commands/audit.js';
import { demoAttacks } from './commands/demo.js';
import { devCommand } from './commands/dev.js';
import { governanceApprove, governancePropose, governanceShow } from './commands/governance.js';
import { initCommand, initSign, initSubmit } from './commands/init.js';
import { approveCommand, intentsCommand, rejectCommand, requestCommand } from './commands/intents.js';
import { configCommand, keysList, keysNew, keysShow } from './commands/keys.js';
import { serveCommand, signerPassthrough } from './commands/operate.js';
import { statusCommand } from './commands/status.js';
import type { Context } from './context.js';
import { describeFailure, EXIT_USAGE, type Io, processIo } from './output.js';

export const COMMANDS: readonly Command[] = [
  requestCommand,
  approveCommand,
  rejectCommand,
  intentsCommand,
  statusCommand,
  keysNew,
  keysList,
  keysShow,
  configCommand,
  initCommand,
  initSign,
  initSubmit,
  governancePropose,
  governanceApprove,
  governanceShow,
  auditVerify,
  serveCommand,
  signerPassthrough,
  devCommand,
  demoAttacks,
];

const GROUPS: readonly [string, readonly string[]][] = [
  ['Requesters and approvers', ['request', 'approve', 'reject', 'intents', 'status']],
  [
    'Admins',
    ['init', 'init sign', 'init submit', 'governance propose', 'governance approve', 'governance show'],
  ],
  ['Audit', ['audit verify']],
  ['This device', ['keys new', 'keys list', 'keys show', 'config']],
  ['Operators', ['serve', 'signer', 'dev', 'demo attacks']],
];

function usage(): string {
  const lines = [
    'custos: transaction authorization for crypto custody',
    '',
    'Usage: custos <command> [options]',
    '',
  ];
  for (const [title, names] of GROUPS) {
    lines.push(`${title}:`);
    for (const n of names) {
      const c = COMMANDS.find((x) => x.name === n);
      if (c !== undefined) lines.push(`  ${c.name.padEnd(20)} ${c.summary}`);
    }
    lines.push('');
  }
  lines.push('Run `custos <command> --help` for its options and an example.');
  lines.push('Try it locally: `npm run dev` starts a complete development deployment.');
  return `${lines.join('\n')}\n`;
}

/** Finds the command named by the longest run of leading words. */
function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | null {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command !== undefined) return { command, rest: argv.slice(words) };
  }
  return null;
}

export function defaultContext(io: Io = processIo): Context {
  return {
    env: process.env,
    cwd: process.cwd(),
    io,
    now: Date.now,
    bin: fileURLToPath(new URL('../bin/custos.js', import.meta.url)),
  };
}

/** Runs one command line; returns the exit code. Never throws. */
export async function run(argv: readonly string[], ctx: Context = defaultContext()): Promise<number> {
  const first = argv[0];
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    ctx.io.out(usage());
    return first === undefined ? EXIT_USAGE : 0;
  }
  if (first === '--version') {
    ctx.io.out('custos 0.1.0\n');
    return 0;
  }
  const found = findCommand(argv);
  if (found === null) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
    if (group.length > 0) {
      ctx.io.err(`custos ${first}: one of ${group.map((c) => c.name.split(' ')[1]).join(', ')}\n`);
    } else {
      ctx.io.err(`custos: unknown command ${JSON.stringify(first)}\n\n${usage()}`);
    }
    return EXIT_USAGE;
  }
  const { command, rest } = found;
  try {
    if (command.runRaw !== undefined) return await command.runRaw(ctx, rest);
    if (rest.includes('--help') || rest.includes('-h')) {
      ctx.io.out(command.help);
      return 0;
    }
    const args = parse(rest, command.options, command.positionals ?? 0);
    return await command.run(ctx, args);
  } catch (err) {
    const failure = describeFailure(err);
    ctx.io.err(failure.text);
    if (failure.exit === EXIT_USAGE) ctx.io.err(`see \`custos ${command.name} --help\`\n`);
    return failure.exit;
  }
}
