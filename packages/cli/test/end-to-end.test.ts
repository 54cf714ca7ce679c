/**
 * The CLI end to end, on regtest, against a real coordinator (`custos serve`)
 * and two real signer processes: a withdrawal from request to block, and the
 * approver's own checks refusing what a compromised coordinator or database
 * serves (docs/architecture.md flow step 2; THREATS 6, 7, 23, 30). Every command is the
 * real executable in a child process.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressToScript, buildPsbt, parseBlock, parseDescriptor, psbtToBase64 } from '@custos/bitcoin';
import { custos, eventually, ok, start } from '@custos/test-support/cli';
import { type Deployment, startDeployment, testAddress } from '@custos/test-support/deployment';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface IntentJson {
  id: string;
  status: string;
  statusCode: string | null;
  signers: {
    signer: string;
    outcome: string | null;
    code: string | null;
    message: string | null;
    alert: string | null;
  }[];
  approvals: { approver: string; decision: string }[];
  txid: string | null;
  confirmations: number | null;
}

let w: Deployment;

beforeAll(async () => {
  w = await startDeployment();
}, 180_000);

afterAll(async () => {
  await w?.stop();
});

const show = (id: string) => w.show<IntentJson>(id);
const request = (amount: string, memo: string) => w.request(amount, memo);

function db(): Database.Database {
  const d = new Database(w.database);
  d.pragma('busy_timeout = 5000');
  return d;
}

describe('custos on regtest, through the command line', () => {
  let paid: string;

  it('request, two approvals on their own devices, both signers sign, broadcast, mined; audit verify passes', async () => {
    const id = await request('100000', 'e2e payout');
    paid = id;

    const first = await w.cli(['approve', id, '--as', 'approver-1', '--yes']);
    expect(first.code, first.stderr).toBe(0);
    // What the approver saw was decoded here, not the coordinator's summary.
    expect(first.stdout).toContain('0.00100000 BTC (100000 sat)');
    expect(first.stdout).toContain('address book: Cold storage');
    expect(first.stdout).toContain('FIRST_PAYMENT');
    expect(first.stdout).toContain('approved by approver-1');

    const second = await w.cli(['approve', id, '--as', 'approver-2', '--yes']);
    expect(second.code, second.stderr).toBe(0);

    let last: IntentJson | undefined;
    const broadcast = await eventually(
      async () => {
        const v = await show(id);
        last = v;
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
        return ['broadcast', 'confirmed'].includes(v.status) ? v : undefined;
      },
      'the transaction to be broadcast',
      90_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; the intent: ${JSON.stringify(last)}`);
    });
    expect(
      broadcast.signers
        .filter((s) => s.outcome === 'signed')
        .map((s) => s.signer)
        .sort(),
    ).toEqual(['signer-1', 'signer-2']);
    expect(broadcast.txid).toMatch(/^[0-9a-f]{64}$/);

    await w.node.mine(1);
    const confirmed = await eventually(
      async () => {
        const v = await show(id);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the transaction to be confirmed',
      60_000,
    );
    // The block itself pays the intent's destination exactly the intent's amount.
    const rpc = w.node.rpc;
    const block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(await rpc.getBlockCount())));
    const tx = block.txs.find((t) => t.txid === confirmed.txid);
    expect(tx).toBeDefined();
    const coldScript = Buffer.from(addressToScript(w.cold, 'regtest')!).toString('hex');
    const outputs = Array.from({ length: tx!.tx.outputsLength }, (_, i) => tx!.tx.getOutput(i));
    expect(
      outputs.some((o) => Buffer.from(o.script!).toString('hex') === coldScript && o.amount === 100_000n),
    ).toBe(true);

    const audit = await w.cli(['audit', 'verify', '--as', 'admin-1']);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/audit log intact: [0-9]+ entries/);
  }, 150_000);

  it('the list and the intent agree on confirmations and signers; approving again says it was already approved', async () => {
    const one = await show(paid);
    const list = JSON.parse(await w.ok(['intents', '--as', 'admin-1', '--json'])) as (IntentJson & {
      statusMessage: string | null;
    })[];
    const listed = list.find((v) => v.id === paid)!;
    expect(one.confirmations).toBeGreaterThanOrEqual(1);
    expect(listed.confirmations).toBe(one.confirmations);
    expect(listed.signers).toEqual(one.signers);
    expect(listed.signers.map((x) => x.signer).sort()).toEqual(['signer-1', 'signer-2']);

    const again = await w.cli(['approve', paid, '--as', 'approver-1', '--yes']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /^custos: DUPLICATE_APPROVER: this member already decided on this intent\n {2}you \(approver-1\) already approved this intent [0-9]+ (s|min) ago; it is now confirmed, and nothing was signed\n$/,
    );
    const late = await w.cli(['approve', paid, '--as', 'approver-3', '--yes', '--json']);
    expect(late.code).toBe(1);
    expect(JSON.parse(late.stderr)).toEqual({
      error: {
        code: 'CONFLICT',
        message: 'it conflicts with the current state',
        detail: 'the intent is already confirmed: a decision now changes nothing, and nothing was signed',
      },
    });
  }, 60_000);

  it('a destination with a bad checksum, of another network or of no known form is refused, each with its own sentence; upper-case bech32 is stored in lower case', async () => {
    const ask = (to: string, json = false) =>
      w.cli([
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'btc-main',
        '--to',
        to,
        '--amount',
        '20000',
        ...(json ? ['--json'] : []),
      ]);
    const last = w.cold.at(-1) === 'q' ? 'p' : 'q';
    const typo = `${w.cold.slice(0, -1)}${last}`;
    const bad = await ask(typo);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      `custos: INVALID_VALUE: a value is not acceptable\n  ${typo} has a bad checksum: a character is wrong or missing (a typo?)\n`,
    );
    const mainnet = 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4';
    const other = await ask(mainnet);
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      `custos: WRONG_CHAIN: it names another chain than the wallet\n  ${mainnet} is a mainnet address, and the wallet is on bitcoin:regtest\n`,
    );
    const nonsense = await ask('not-an-address', true);
    expect(nonsense.code).toBe(1);
    expect(JSON.parse(nonsense.stderr)).toEqual({
      error: {
        code: 'INVALID_VALUE',
        message: 'a value is not acceptable',
        detail:
          'not-an-address is not a Bitcoin address of a known form (on bitcoin:regtest: bcrt1... bech32, or base58)',
      },
    });
    expect(nonsense.stdout).toBe('');

    const upper = await ask(w.cold.toUpperCase());
    expect(upper.code, upper.stderr).toBe(0);
    const id = upper.stdout.trim();
    const stored = JSON.parse(await w.ok(['intents', id, '--as', 'admin-1', '--json'])) as { to: string };
    expect(stored.to).toBe(w.cold);
    const d = db();
    const row = d.prepare('SELECT destination FROM intents WHERE id = ?').get(id) as { destination: string };
    d.close();
    expect(row.destination).toBe(w.cold);
    // Rejected: the reason is kept and shown with its code.
    await w.ok(['reject', id, '--as', 'approver-2', '--yes']);
    const rejected = await w.ok(['intents', id, '--as', 'admin-1']);
    expect(rejected).toMatch(/^Status {5}rejected \(INTENT_REJECTED\)$/m);
    expect(rejected).toMatch(/^Reason {5}.*approver-2.*$/m);
  }, 60_000);

  it('approve refuses, exit 1 with UNEXPECTED_OUTPUT, a transaction the coordinator altered to pay someone else', async () => {
    // THREATS 7 / 23: whoever writes the coordinator's database swaps the transaction for one that pays
    // another address-book entry. It is a genuine spend of the wallet, so only decoding it against the
    // intent shows the difference.
    const parsed = parseDescriptor(w.descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const swapped = buildPsbt({
      wallet: parsed.value,
      utxos: [
        {
          txid: w.funding.txid,
          vout: w.funding.vout,
          value: w.funding.value,
          branch: 0,
          index: 0,
          prevTx: w.funding.raw,
        },
      ],
      to: w.exchange,
      amount: 100_000n,
      feeRate: 5n,
      changeIndex: 7,
    });
    if (!swapped.ok) throw new Error(swapped.message);
    const d = db();
    d.prepare('UPDATE intents SET psbt = ? WHERE id = ?').run(psbtToBase64(swapped.value.psbt), paid);
    d.close();

    const r = await w.cli(['approve', paid, '--as', 'approver-3', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'custos: UNEXPECTED_OUTPUT: the transaction does not pay exactly the destination and amount of the intent',
    );
    expect(r.stdout).toContain(`REFUSED    UNEXPECTED_OUTPUT`);
    // It was shown as decoded here: the payment to the exchange the coordinator slipped in.
    expect(r.stdout).toContain(w.exchange);
    expect((await show(paid)).approvals.map((a) => a.approver)).not.toContain('approver-3');
  }, 60_000);

  it('approve refuses, exit 1 with INTENT_SIGNATURE_INVALID, an intent rewritten after the requester signed it', async () => {
    // THREATS 6 / 7, the DMM case at rest: amount and destination rewritten in the stored intent.
    const id = await request('70000', 'to be rewritten');
    const d = db();
    const row = d.prepare('SELECT body FROM intents WHERE id = ?').get(id) as { body: string };
    const body = JSON.parse(row.body) as { intent: { amount: string; to: string } };
    body.intent.amount = '7000000';
    body.intent.to = w.exchange;
    d.prepare('UPDATE intents SET body = ?, amount = ?, destination = ? WHERE id = ?').run(
      JSON.stringify(body),
      '7000000',
      w.exchange,
      id,
    );
    d.close();

    const r = await w.cli(['approve', id, '--as', 'approver-1', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^custos: INTENT_SIGNATURE_INVALID: /m);
    expect(r.stdout).toContain('0.07000000 BTC');
    const after = db();
    const count = after.prepare('SELECT count(*) AS n FROM approvals WHERE intent = ?').get(id) as {
      n: number;
    };
    after.close();
    expect(count.n).toBe(0);
  }, 60_000);

  it('a request to an address outside the address book is refused: exit 1, the code and a sentence, nothing stored', async () => {
    const r = await w.cli([
      'request',
      '--as',
      'requester-1',
      '--wallet',
      'btc-main',
      '--to',
      testAddress('not in the book'),
      '--amount',
      '0.001btc',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^custos: DESTINATION_NOT_ALLOWED: the destination is not in the address book$/m,
    );
    expect(r.stdout).toBe('');
    const d = db();
    const n = d
      .prepare('SELECT count(*) AS n FROM intents WHERE destination = ?')
      .get(testAddress('not in the book')) as {
      n: number;
    };
    d.close();
    expect(n.n).toBe(0);
  }, 30_000);

  it('approve asks "Approve? [y/N]" and a no signs nothing; a reject on another device vetoes the intent', async () => {
    const id = await request('25000', 'asked and declined');
    const declined = await w.cli(['approve', id.slice(0, 12), '--as', 'approver-1'], 'n\n');
    expect(declined.code).toBe(1);
    expect(declined.stderr).toContain('Approve? [y/N]');
    expect(declined.stderr).toContain('nothing signed');
    expect((await show(id)).approvals).toEqual([]);

    const rejected = await w.cli(['reject', id, '--as', 'approver-2', '--yes']);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(rejected.stdout).toContain('rejected by approver-2; intent is now rejected');
    expect((await show(id)).status).toBe('rejected');
    const list = await w.ok(['intents', '--as', 'approver-1', '--status', 'rejected']);
    expect(list).toContain(id.slice(0, 12));
  }, 60_000);

  it('governance: one admin proposes an address, the other co-signs after checking it; it waits out the delay', async () => {
    const address = testAddress('new exchange');
    const body = JSON.stringify({
      id: 'new-exchange',
      chain: 'bitcoin:regtest',
      address,
      label: 'New exchange',
    });
    const proposed = await w.cli([
      'governance',
      'propose',
      'address.add',
      '--body',
      body,
      '--as',
      'admin-1',
      '--yes',
    ]);
    expect(proposed.code, proposed.stderr).toBe(0);
    expect(proposed.stdout).toContain('NOTE: a loosening change');
    const proposal = proposed.stdout.trim().split('\n').at(-1)!;
    expect(proposal).toMatch(/^[0-9a-f]{64}$/);

    const listed = await w.ok(['governance', 'show', '--proposals', '--as', 'admin-2']);
    expect(listed).toContain(`${proposal}  seq 1 address.add, 1 signature(s)`);

    const cosigned = await w.cli([
      'governance',
      'approve',
      proposal.slice(0, 10),
      '--as',
      'admin-2',
      '--yes',
    ]);
    expect(cosigned.code, cosigned.stderr).toBe(0);
    expect(cosigned.stdout).toContain('signed by admin-1/admin-1-laptop (admin): verifies');
    expect(cosigned.stdout).toContain('co-signed by admin-2: applied');

    const shown = JSON.parse(await w.ok(['governance', 'show', '--as', 'approver-1', '--json'])) as {
      state: { seq: number; addresses: { entry: { id: string }; activeFrom: number }[] };
    };
    expect(shown.state.seq).toBe(1);
    const added = shown.state.addresses.find((a) => a.entry.id === 'new-exchange');
    expect(added!.activeFrom).toBeGreaterThan(Date.now() + 50 * 60_000);

    // THREATS 18: even with a full quorum, the new destination is not usable before its delay.
    const early = await w.cli([
      'request',
      '--as',
      'requester-1',
      '--wallet',
      'btc-main',
      '--to',
      address,
      '--amount',
      '10000',
    ]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/^custos: DESTINATION_NOT_ACTIVE: /m);
  }, 60_000);

  it('init: a genesis signed in turn by admins on separate machines, then submitted to a new coordinator and pinned', async () => {
    const homes = { a: join(w.dir, 'home-a'), b: join(w.dir, 'home-b') };
    const envOf = (home: string) => ({ ...w.env, CUSTOS_HOME: home });
    const shown: unknown[] = [];
    for (const [member, home] of [
      ['boss-1', homes.a],
      ['boss-2', homes.b],
    ] as const) {
      await ok(['keys', 'new', '--member', member, '--device', 'laptop', '--scrypt-log-n', '12'], {
        env: envOf(home),
      });
      shown.push(JSON.parse(await ok(['keys', 'show', '--json'], { env: envOf(home) })));
    }
    writeFileSync(join(w.dir, 'bosses.json'), JSON.stringify(shown));
    const file = join(w.dir, 'two-genesis.json');

    const built = await custos(
      [
        'init',
        '--name',
        'Two Machines',
        '--admins',
        join(w.dir, 'bosses.json'),
        '--quorum',
        '2',
        '--out',
        file,
        '--yes',
      ],
      { env: envOf(homes.a) },
    );
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toContain('(1 of 2 admin signature(s))');
    const digest = built.stdout.trim();

    const signed = await custos(['init', 'sign', file, '--yes'], { env: envOf(homes.b) });
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.stderr).toContain('(2 of 2 admin signature(s))');

    writeFileSync(
      join(w.dir, 'coordinator-2.json'),
      JSON.stringify({
        host: '127.0.0.1',
        port: 0,
        sqlite: 'coordinator-2.db',
        bitcoin: { rpcUrl: w.node.rpcUrl, rpcUser: w.node.rpcUser, rpcPasswordFile: 'rpc.password' },
        logLevel: 'warn',
      }),
    );
    const second = start(['serve', '--config', join(w.dir, 'coordinator-2.json')], { env: w.env });
    try {
      const url = (await second.waitFor(/listening on http:\/\/127\.0\.0\.1:[0-9]+/)).split(' ').at(-1)!;
      const submitted = await custos(['init', 'submit', file, '--coordinator', url], { env: envOf(homes.b) });
      expect(submitted.code, submitted.stderr).toBe(0);
      expect(submitted.stdout.trim()).toBe(digest);
      // Pinned: the next command needs no --genesis and verifies the chain from it.
      const state = JSON.parse(await ok(['governance', 'show', '--json'], { env: envOf(homes.b) })) as {
        state: { name: string; org: string; members: { id: string }[] };
      };
      expect(state.state).toMatchObject({ name: 'Two Machines', org: digest });
      expect(state.state.members.map((m) => m.id).sort()).toEqual(['boss-1', 'boss-2']);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 90_000);

  it('audit verify fails naming the first bad entry after a row is deleted from the database (THREATS 30)', async () => {
    const before = await w.cli(['audit', 'verify', '--as', 'admin-1', '--json']);
    expect(before.code, before.stderr).toBe(0);
    expect((JSON.parse(before.stdout) as { entries: number }).entries).toBeGreaterThan(6);

    const d = db();
    d.prepare('DELETE FROM audit_log WHERE seq = ?').run(4);
    d.close();

    const r = await w.cli(['audit', 'verify', '--as', 'admin-1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^custos: AUDIT_CHAIN_BROKEN: entry 4 is missing/m);
  }, 60_000);
});
