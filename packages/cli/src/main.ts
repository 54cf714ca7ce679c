/**
 * `custos`: one command for every role.
 *
 *   requester  custos request | bump
 *   approver   custos approve | reject | intents
 *   admin      custos init | governance propose | governance approve
 *   anyone     custos status | governance show | audit verify | keys | config
 *   operator   custos serve | signer init | signer run
 *   cold       custos intents export | signer offline | intents import
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
import { bumpCommand } from './commands/bump.js';
import { consoleVerify } from './commands/console.js';
import { demoAttacks } from './commands/demo.js';
import { demoPayouts } from './commands/demo-payouts.js';
import { devCommand } from './commands/dev.js';
import { governanceApprove, governancePropose, governanceShow } from './commands/governance.js';
import { initCommand, initSign, initSubmit } from './commands/init.js';
import { approveCommand, intentsCommand, rejectCommand, requestCommand } from './commands/intents.js';
import { configCommand, keysList, keysNew, keysShow } from './commands/keys.js';
import { intentsExport, intentsImport } from './commands/offline.js';
import {
  serveCommand,
  signerExportKey,
  signerInit,
  signerOffline,
  signerRun,
  signerStatus,
} from './commands/operate.js';
import { statusCommand } from './commands/status.js';
import { watchCommand } from './commands/watch.js';
import type { Context } from './context.js';
import { describeFailure, EXIT_USAGE, type Io, processIo, toJson } from './output.js';

export const COMMANDS: readonly Command[] = [
  requestCommand,
  approveCommand,
  rejectCommand,
  bumpCommand,
  intentsCommand,
  intentsExport,
  intentsImport,
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
  consoleVerify,
  serveCommand,
  signerInit,
  signerRun,
  signerStatus,
  signerOffline,
  signerExportKey,
  watchCommand,
  devCommand,
  demoAttacks,
  demoPayouts,
];

const GROUPS: readonly [string, readonly string[]][] = [
  ['Requesters and approvers', ['request', 'approve', 'reject', 'bump', 'intents', 'status']],
  [
    'Admins',
    ['init', 'init sign', 'init submit', 'governance propose', 'governance approve', 'governance show'],
  ],
  ['Audit', ['audit verify', 'console verify']],
  ['This device', ['keys new', 'keys list', 'keys show', 'config']],
  ['Cold storage', ['intents export', 'signer offline', 'intents import']],
  ['Operators', ['serve', 'signer init', 'signer run', 'signer status', 'signer export-key', 'watch']],
  ['Developers', ['dev', 'demo attacks', 'demo payouts']],
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
  // `custos help request` is `custos request --help`.
  if (first === 'help' && argv.length > 1) return run([...argv.slice(1), '--help'], ctx);
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
      // `custos signer --help`: the group's commands (exit 0); `custos signer` or a wrong word: the same, exit 2.
      const asked = argv[1] === '--help' || argv[1] === '-h' || argv[1] === 'help';
      const list = group.map((c) => `  ${c.name.padEnd(20)} ${c.summary}\n`).join('');
      const text = `custos ${first}: one of\n${list}Run \`custos ${first} <${group.length > 1 ? 'command' : group[0]!.name.split(' ')[1]}> --help\` for its options and an example.\n`;
      if (asked) {
        ctx.io.out(text);
        return 0;
      }
      ctx.io.err(
        argv[1] === undefined ? text : `custos ${first}: unknown command ${JSON.stringify(argv[1])}\n${text}`,
      );
    } else {
      ctx.io.err(`custos: unknown command ${JSON.stringify(first)}\n\n${usage()}`);
    }
    return EXIT_USAGE;
  }
  const { command, rest } = found;
  const json = rest.includes('--json');
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      ctx.io.out(command.help);
      return 0;
    }
    if (command.runRaw !== undefined) return await command.runRaw(ctx, rest);
    const args = parse(rest, command.options, command.positionals ?? 0, command.common);
    return await command.run(ctx, args);
  } catch (err) {
    const failure = describeFailure(err);
    if (json) {
      ctx.io.err(toJson(failure.json));
      return failure.exit;
    }
    ctx.io.err(failure.text);
    if (failure.exit === EXIT_USAGE) ctx.io.err(`see \`custos ${command.name} --help\`\n`);
    return failure.exit;
  }
}
