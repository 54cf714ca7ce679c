/**
 * docs/operations.md, the operator's guide, held to the code where it can be:
 * every `custos` command it shows exists and takes the options it is shown
 * with; its table of `custos serve` settings names every environment variable
 * the server reads and every field of the config file, and nothing else; and
 * `custos signer export-key`, the first step of "Recovery without Custos",
 * runs through the `custos` command itself. The ceremony, the backup and
 * restore and the runbook are run by the tests the guide names.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { custos } from '@custos/test-support/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { serveConfigFile } from '../src/commands/operate.js';
import { COMMANDS } from '../src/main.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const GUIDE = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'custos-operations-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The code in the guide: fenced blocks (continuation lines joined) and inline spans, whitespace collapsed. */
function codeOf(markdown: string): string[] {
  const out: string[] = [];
  const prose = markdown.replace(/^[ \t]*```[^\n]*\n([\s\S]*?)^[ \t]*```[ \t]*$/gm, (_, body: string) => {
    out.push(...body.replace(/\\\n/g, ' ').split('\n'));
    return '';
  });
  for (const m of prose.matchAll(/`([^`]+)`/g)) out.push(m[1]!.replace(/\s+/g, ' '));
  return out;
}

/** Each `custos ...` command line in `code`: the words after `custos` up to a comment, pipe or redirection. */
function commandLines(code: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of code) {
    for (const m of line.matchAll(/(?:^|[\s/])custos[ \t]+([^#|>;&]*)/g)) out.push(m[1]!.trim());
  }
  return out;
}

/** The command a line names (its longest run of leading words), or undefined. */
function commandOf(line: string) {
  const words = line.split(' ');
  for (const n of [2, 1]) {
    const c = COMMANDS.find((x) => x.name === words.slice(0, n).join(' '));
    if (c !== undefined) return c;
  }
  return undefined;
}

describe('docs/operations.md', () => {
  it('shows only commands that exist, each with options it takes', () => {
    const lines = commandLines(codeOf(GUIDE));
    // The guide shows the ceremony, the runbook, backups and recovery: dozens of command lines.
    expect(lines.length).toBeGreaterThan(30);
    const problems: string[] = [];
    for (const line of lines) {
      const c = commandOf(line);
      if (c === undefined) {
        problems.push(`custos ${line}: no such command`);
        continue;
      }
      for (const [flag] of line.matchAll(/--[a-z][a-z0-9-]*/g)) {
        if (!c.help.includes(flag)) problems.push(`custos ${line}: ${c.name} takes no ${flag}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('names every setting `custos serve` reads, from the environment and from its config file, and no other', () => {
    const section = GUIDE.slice(
      GUIDE.indexOf('## Production topology'),
      GUIDE.indexOf('## The key ceremony'),
    );
    const source = readFileSync(join(ROOT, 'packages/server/src/config.ts'), 'utf8');
    const read = new Set([
      ...[...source.matchAll(/env\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!),
      ...[...source.matchAll(/secret\(env, '([A-Z][A-Z0-9_]+)'\)/g)].map((m) => m[1]!),
    ]);
    expect(read.size).toBeGreaterThan(10);
    const table = section.slice(section.indexOf('| variable | config file |')).split('\n\n')[0]!;
    const documented = new Set(
      [...table.matchAll(/`((?:CUSTOS|DATABASE|BITCOIN)_[A-Z0-9_]+)`/g)].map((m) => m[1]!),
    );
    expect([...read].filter((v) => !documented.has(v))).toEqual([]);
    expect([...documented].filter((v) => !read.has(v))).toEqual([]);

    const schema = serveConfigFile.jsonSchema as {
      properties: Record<string, { properties?: Record<string, unknown> }>;
    };
    const fields = Object.entries(schema.properties).flatMap(([k, v]) =>
      v.properties === undefined ? [k] : Object.keys(v.properties).map((sub) => `${k}.${sub}`),
    );
    for (const f of fields) expect(table, f).toContain(`\`${f}\``);
  });

  it('`custos signer export-key` writes the key, refuses a wrong confirmation, and `custos signer status` shows the export', async () => {
    const env = { CUSTOS_SIGNER_PASSWORD: 'an operations guide test password' };
    const init = await custos(
      [
        'signer',
        'init',
        '--id',
        'signer-1',
        '--keystore',
        join(dir, 'signer-1.key'),
        '--network',
        'regtest',
        '--scrypt-log-n',
        '12',
      ],
      { env },
    );
    expect(init.code, init.stderr).toBe(0);
    const pub = JSON.parse(init.stdout) as { fingerprint: string; path: string; xpub: string };
    const config = join(dir, 'signer-1.json');
    writeFileSync(
      config,
      JSON.stringify({
        id: 'signer-1',
        genesis: 'ab'.repeat(32),
        keystore: 'signer-1.key',
        database: 'signer-1.db',
        chains: ['bitcoin:regtest'],
      }),
    );
    const out = join(dir, 'signer-1.xprv.json');

    const wrong = await custos(['signer', 'export-key', '--config', config, '--out', out], {
      env,
      input: 'yes\n',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('INVALID_VALUE');

    const typed = await custos(['signer', 'export-key', '--config', config, '--out', out], {
      env,
      input: 'export signer-1\n',
    });
    expect(typed.code, typed.stderr).toBe(0);
    const file = JSON.parse(readFileSync(out, 'utf8')) as { descriptorKey: string; xpub: string };
    expect(file.xpub).toBe(pub.xpub);
    expect(file.descriptorKey).toMatch(new RegExp(`^\\[${pub.fingerprint}/${pub.path}\\]tprv`));
    expect(typed.stdout).not.toContain(file.descriptorKey.slice(-40));

    const status = await custos(['signer', 'status', '--config', config]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`KEY EXPORTED at `);
    expect(status.stdout).toContain(`to ${out}`);
  }, 60_000);
});
