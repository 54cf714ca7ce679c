/**
 * Batch payouts in the CLI (issue 13): `custos request --batch <file>` reads
 * "address,amount" lines (CSV) or a JSON array, and `custos approve` shows
 * every output of a batch with its address-book status, its look-alike and
 * book warnings per destination, and refuses to approve a PSBT that does
 * not pay exactly the list (the verifier's UNEXPECTED_OUTPUT).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPsbt, psbtToBase64 } from '@custos/bitcoin';
import { type Address, type Amount, intentDigest, type SignedIntent } from '@custos/core';
import { custos } from '@custos/test-support/cli';
import { COLD_STORAGE } from '@custos/test-support/org';
import { ATTACKER, DESTINATION } from '@custos/test-support/psbt-fixtures';
import { makeWorld } from '@custos/test-support/world';
import { afterAll, describe, expect, it } from 'vitest';
import type { IntentView } from '../src/client.js';
import { readBatch } from '../src/commands/intents.js';
import { UsageError } from '../src/output.js';
import { formatReview, reviewIntent } from '../src/review.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-cli-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('custos request --batch <file>', () => {
  it('reads CSV lines, skipping a header, blank lines and comments', () => {
    const path = file(
      'a.csv',
      `to,amount\n# payouts 14:00\n${DESTINATION}, 15000\n\n${ATTACKER},0.0002btc\n`,
    );
    expect(readBatch(path)).toEqual([
      { to: DESTINATION, amount: '15000', line: 3 },
      { to: ATTACKER, amount: '0.0002btc', line: 5 },
    ]);
  });

  it('reads a JSON array of {to, amount}', () => {
    const path = file(
      'a.json',
      JSON.stringify([
        { to: DESTINATION, amount: '1000' },
        { to: ATTACKER, amount: 2000 },
      ]),
    );
    expect(readBatch(path).map((l) => [l.to, l.amount])).toEqual([
      [DESTINATION, '1000'],
      [ATTACKER, '2000'],
    ]);
  });

  it('is a usage error naming the line for a malformed line, and for fewer than two outputs', () => {
    expect(() => readBatch(file('bad.csv', `${DESTINATION},1000\n${ATTACKER}\n`))).toThrow(/line 2/);
    expect(() => readBatch(file('one.csv', `${DESTINATION},1000\n`))).toThrow(UsageError);
    expect(() => readBatch(join(dir, 'missing.csv'))).toThrow(UsageError);
  });

  it('exits 2 before the session for a batch file that does not read, or --batch with --to', async () => {
    const missing = await custos(['request', '--wallet', 'w', '--batch', join(dir, 'missing.csv')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`custos: --batch ${join(dir, 'missing.csv')}`);
    const good = file('two.csv', `${DESTINATION},1000\n${ATTACKER},2000\n`);
    const both = await custos(['request', '--wallet', 'w', '--batch', good, '--to', DESTINATION]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--batch takes the place of --to and --amount');
  });
});

describe('custos approve on a batch', () => {
  const world = makeWorld();
  const outputs = [
    { to: COLD_STORAGE, amount: '40000' as Amount },
    { to: DESTINATION as Address, amount: '25000' as Amount },
    { to: ATTACKER as Address, amount: '35000' as Amount },
  ];
  const intent: SignedIntent = world.intent(100_000n, { to: COLD_STORAGE, outputs });
  const utxos = world.utxos([300_000n]);
  const build = (list: typeof outputs) => {
    const r = buildPsbt({
      wallet: world.descriptor,
      utxos,
      to: list[0]!.to,
      amount: list.reduce((s, o) => s + BigInt(o.amount), 0n),
      outputs: list.map((o) => ({ to: o.to, amount: BigInt(o.amount) })),
      feeRate: 5n,
      changeIndex: 0,
    });
    if (!r.ok) throw new Error(r.message);
    return psbtToBase64(r.value.psbt);
  };
  const view = (psbt: string | null): IntentView => ({
    id: intentDigest(intent.intent),
    status: 'signing',
    statusCode: null,
    statusMessage: null,
    intent,
    approvals: [],
    psbt,
    safeTx: null,
    txid: null,
    confirmations: null,
    signers: [],
    decision: null,
  });
  const review = (psbt: string | null) =>
    reviewIntent({
      state: world.org.state,
      pinnedGenesis: world.org.orgId,
      view: view(psbt),
      history: [],
      now: world.clock.now,
    });

  it('shows every output with its amount and address-book status', () => {
    const r = review(build(outputs));
    expect(r.problems).toEqual([]);
    expect(r.outputs.map((o) => [o.to, o.amount, o.status])).toEqual([
      [COLD_STORAGE, '40000', 'active'],
      [DESTINATION, '25000', 'unknown'],
      [ATTACKER, '35000', 'unknown'],
    ]);
    const text = formatReview(r, world.clock.now);
    expect(text).toContain('Outputs    3 (a batch; To is the first)');
    for (const o of outputs) expect(text).toMatch(new RegExp(`${o.to}\\s+0\\.000\\d+ BTC|${o.to}\\s+\\d`));
    expect(text).toContain('NOT IN BOOK');
    // Each destination outside the book is a warning of its own, not only the first.
    expect(r.warnings.filter((w) => w.code === 'DESTINATION_NOT_ALLOWED').map((w) => w.message)).toEqual([
      `${DESTINATION} is not in the address book`,
      `${ATTACKER} is not in the address book`,
    ]);
  });

  it('refuses a PSBT that drops or changes an output (UNEXPECTED_OUTPUT, approving is refused)', () => {
    const dropped = review(build(outputs.slice(0, 2)));
    expect(dropped.problems.map((p) => p.code)).toContain('UNEXPECTED_OUTPUT');
    const changed = review(build(outputs.map((o, k) => (k === 1 ? { ...o, to: ATTACKER as Address } : o))));
    expect(changed.problems.map((p) => p.code)).toContain('UNEXPECTED_OUTPUT');
  });
});
