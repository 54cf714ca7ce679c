/**
 * The command line's own contract, without a deployment: help with an
 * example for every command, exit codes (0 done, 1 refused, 2 usage), device
 * keys sealed at rest in 0600 files, and passwords never printed.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { custos } from '@custos/test-support/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/main.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-cli-basics-'));
const home = join(dir, 'home');
const PASSWORD = 'correct horse battery staple, for a test';
const GENESIS = 'ab'.repeat(32);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('custos command line', () => {
  it('prints its commands with --help (exit 0) and its usage with no command (exit 2)', async () => {
    const help = await custos(['--help']);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(c.name);
    const bare = await custos([]);
    expect(bare.code).toBe(2);
    const unknown = await custos(['teleport']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "teleport"');
  });

  it('has --help with an example for every command', () => {
    for (const c of COMMANDS) {
      expect(c.help, c.name).toMatch(new RegExp(`^custos ${c.name}`));
      expect(c.help, c.name).toMatch(/Example/);
    }
  });

  it('prints each command its own help with --help, exit 0, and only the options it takes', async () => {
    // Four processes at a time: thirty at once on two loaded cores can outlast the test's time.
    const results: Awaited<ReturnType<typeof custos>>[] = [];
    for (let i = 0; i < COMMANDS.length; i += 4) {
      const batch = COMMANDS.slice(i, i + 4).map((c) => custos([...c.name.split(' '), '--help']));
      results.push(...(await Promise.all(batch)));
    }
    COMMANDS.forEach((c, i) => {
      const r = results[i]!;
      expect(r.code, c.name).toBe(0);
      expect(r.stdout, c.name).toBe(c.help);
    });
    const signerInit = await custos(['signer', 'init', '--help']);
    expect(signerInit.stdout).toMatch(/^custos signer init --id <id> --keystore <file>/);
    expect(signerInit.stdout).toContain(
      '--network <name>         regtest (default), testnet, signet or mainnet',
    );
    const viaHelp = await custos(['help', 'signer', 'init']);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(signerInit.stdout);
    const group = await custos(['signer', '--help']);
    expect(group.code).toBe(0);
    expect(group.stdout).toContain('signer init ');
    expect(group.stdout).toContain('signer run ');
    const dev = await custos(['dev', '--help']);
    expect(dev.stdout).toContain('--dir <path>');
    for (const foreign of ['--as', '--coordinator', '--genesis', '--password-file', '--json']) {
      expect(dev.stdout).not.toContain(foreign);
    }
    const wrong = await custos(['dev', '--as', 'someone']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('custos: unknown option --as');
  }, 180_000);

  it('says what is wrong with an amount: negative, zero, too many decimals, over 21 million BTC, not a number', async () => {
    const cases: [string, string][] = [
      ['-5', '--amount -5 is negative: an amount to send is more than zero'],
      ['-0.5btc', '--amount -0.5btc is negative: an amount to send is more than zero'],
      ['0', '--amount 0 is zero: an amount to send is more than zero'],
      ['0.0btc', '--amount 0.0btc is zero: an amount to send is more than zero'],
      [
        '0.000000001btc',
        '--amount 0.000000001btc has 9 decimals, more than BTC has (8: 1 satoshi is 0.00000001 BTC)',
      ],
      [
        '1.5',
        '--amount 1.5 has decimals, but satoshi is the smallest unit: give a whole number of satoshi, or BTC with its unit (1.5btc)',
      ],
      [
        '21000000.00000001btc',
        '--amount 21000000.00000001btc is more than 21,000,000 BTC, all the bitcoin there will ever be',
      ],
      [
        '2100000000000001',
        '--amount 2100000000000001 is more than 21,000,000 BTC, all the bitcoin there will ever be',
      ],
      ['lots', '--amount "lots" is not an amount: give satoshi (150000) or BTC with its unit (0.0015btc)'],
    ];
    const results = await Promise.all(
      cases.map(([amount]) => custos(['request', '--wallet', 'w', '--to', 'x', '--amount', amount])),
    );
    cases.forEach(([amount, message], i) => {
      const r = results[i]!;
      expect(r.code, amount).toBe(2);
      expect(r.stderr, amount).toBe(`custos: ${message}\nsee \`custos request --help\`\n`);
    });
    const json = await custos(['request', '--wallet', 'w', '--to', 'x', '--amount', '-5', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: 'USAGE',
        message: '--amount -5 is negative: an amount to send is more than zero',
        detail: null,
      },
    });
  });

  it('exits 2 on a usage mistake, naming it and the help to read', async () => {
    const missing = await custos(['approve']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('custos: missing the intent id');
    expect(missing.stderr).toContain('see `custos approve --help`');
    const typo = await custos(['request', '--ammount', '5']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown option --ammount');
  });

  it('keys new seals the device key in 0600 files, prints only the public key, and never the password', async () => {
    const env = { CUSTOS_HOME: home, CUSTOS_PASSWORD: PASSWORD };
    const r = await custos(
      ['keys', 'new', '--member', 'approver-9', '--device', 'laptop', '--scrypt-log-n', '12'],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const publicKey = r.stdout.trim();
    expect(publicKey).toMatch(/^[0-9a-f]{64}$/);
    const profile = join(home, 'profiles', 'approver-9');
    for (const f of ['device.key', 'profile.json', '../../config.json']) {
      expect(statSync(join(profile, f)).mode & 0o777, f).toBe(0o600);
    }
    expect(statSync(profile).mode & 0o777).toBe(0o700);
    const sealed = readFileSync(join(profile, 'device.key'), 'utf8');
    expect(sealed).toContain('xchacha20poly1305');
    expect(sealed).toContain(publicKey);
    expect(sealed).not.toContain(PASSWORD);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);

    const shown = JSON.parse((await custos(['keys', 'show', '--json'], { env })).stdout) as Record<
      string,
      string
    >;
    expect(shown).toEqual({ id: 'approver-9', device: 'laptop', kind: 'ed25519', publicKey });

    const again = await custos(['keys', 'new', '--member', 'approver-9', '--device', 'phone'], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^custos: CONFLICT: /m);
  });

  it('refuses a wrong password with BAD_PASSWORD (exit 1) and asks for one when none is given', async () => {
    const conn = ['--coordinator', 'http://127.0.0.1:9', '--genesis', GENESIS];
    const wrong = await custos(['status', ...conn], {
      env: { CUSTOS_HOME: home, CUSTOS_PASSWORD: 'not it' },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /^custos: BAD_PASSWORD: the password is wrong or the key file was altered$/m,
    );
    expect(wrong.stderr).not.toContain('not it');

    const none = await custos(['status', ...conn], { env: { CUSTOS_HOME: home } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(
      'no password: set CUSTOS_PASSWORD, pass --password-file <file>, or run in a terminal',
    );

    const down = await custos(['status', ...conn], { env: { CUSTOS_HOME: home, CUSTOS_PASSWORD: PASSWORD } });
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      'custos: UNAVAILABLE: the service cannot be reached or is not ready\n' +
        '  the coordinator at http://127.0.0.1:9 cannot be reached: is the coordinator running? start it with `npm run dev` (or `custos serve`)\n',
    );
    const downJson = await custos(['intents', '--json', ...conn], {
      env: { CUSTOS_HOME: home, CUSTOS_PASSWORD: PASSWORD },
    });
    expect(downJson.code).toBe(1);
    expect(downJson.stdout).toBe('');
    expect(JSON.parse(downJson.stderr)).toMatchObject({ error: { code: 'UNAVAILABLE' } });
  });

  it('says how to pin the genesis when none is configured (exit 2)', async () => {
    const r = await custos(['intents', '--coordinator', 'http://127.0.0.1:9'], {
      env: { CUSTOS_HOME: home, CUSTOS_PASSWORD: PASSWORD },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no pinned genesis');
  });
});
