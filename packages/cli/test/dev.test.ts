/**
 * `custos dev`, the one-command local deployment: it starts, prints what to
 * type next, a `custos status` against it works, Ctrl-C (SIGINT) stops every
 * process it started, and a second start resumes from the state folder and
 * completes a withdrawal (request, approval, both signers, mined). On the
 * way: a signer's refusal and critical alert are shown with their code and
 * sentence (`custos intents`, `custos status`), a pending intent says when
 * its cancel window ends, and approving twice says so. Issue 13: the exchange
 * shape's hot and cold wallets are printed, and `custos demo payouts` gets
 * single and batched payouts signed and mined until LIMIT_EXCEEDED. Issue 12:
 * the watcher runs (a child process serving its freezes), and the demo's
 * stolen-key theft is frozen on, then unfrozen by the quorum, so the
 * withdrawals after it (and after the restart) still go through.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, custos, descendants, eventually, type Running, start } from '@custos/test-support/cli';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'custos-dev-'));
const state = join(dir, 'state');
const started: Running[] = [];

afterAll(() => {
  for (const r of started) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Which of `pids` are still alive 5 s after their parent exited, by command
 * line: a child's own helper (tsx's esbuild service) ends when its parent
 * does, a moment later, not at the same instant.
 */
async function leftAlive(pids: readonly number[]): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() > deadline) {
      return left.map((pid) => {
        try {
          return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`;
        } catch {
          return `${pid}: (gone)`;
        }
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exitWithin(r: Running, ms: number): Promise<number | null | 'timeout'> {
  return Promise.race([r.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ms))]);
}

interface IntentJson {
  status: string;
  statusCode: string | null;
  txid: string | null;
  confirmations: number | null;
  signers: {
    signer: string;
    outcome: string | null;
    code: string | null;
    message: string | null;
    alert: string | null;
  }[];
}

interface StatusJson {
  organization: { name: string; genesis: string };
  wallets: { id: string; balance: string | null; multisig: string }[];
  signers: { id: string }[];
  coordinator: { health: string; ready: boolean };
}

describe('custos dev', () => {
  it('starts everything, prints the next steps, serves `custos status` and `custos demo attacks` (refusals and alerts shown with their reasons), and SIGINT stops every child; a restart resumes and completes a withdrawal', async () => {
    const dev = start(['dev', '--dir', state, '--port', '0'], { cwd: dir });
    started.push(dev);
    await dev.waitFor('Ctrl-C stops everything.', 120_000);
    const out = dev.output();
    expect(out).toContain('DEVELOPMENT ONLY');
    expect(out).toContain('keep this offline');
    expect(out).toMatch(/ready in [0-9.]+ s \(first start/);
    expect(out).toContain(`export CUSTOS_HOME=${join(state, 'home')}`);
    expect(out).toMatch(
      /npx custos request --as requester-1 --wallet btc-main --to bcrt1q[0-9a-z]+ --amount 150000/,
    );
    expect(out).toContain('npx custos approve <intent id> --as approver-1');
    // Issue 10: the approver console, served at / on localhost (passkeys need a host name), verifiable.
    const consoleUrl = /console {7}(http:\/\/localhost:[0-9]+)\/ /.exec(out)?.[1];
    expect(consoleUrl).toBeDefined();
    const page = await fetch(`${consoleUrl!.replace('localhost', '127.0.0.1')}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("require-trusted-types-for 'script'");
    const verified = await custos(['console', 'verify', consoleUrl!.replace('localhost', '127.0.0.1')]);
    expect(verified.code, verified.stderr).toBe(0);
    // Issue 9: the local EVM chain with the funded 2-of-3 Safe, and how to use it.
    expect(out).toMatch(/evm chain {5}eip155:31337 at http:\/\/127\.0\.0\.1:[0-9]+/);
    expect(out).toMatch(
      /safe {10}eth-safe 0x[0-9a-fA-F]{40} \(Safe 1\.4\.1, 2-of-3[^)]*\), balances 100 ETH, 1000000 USDT/,
    );
    const example =
      /npx custos request --as requester-1 --wallet eth-safe --asset usdt --to (0x[0-9a-f]{40}) --amount 25usdt/.exec(
        out,
      );
    expect(example).not.toBeNull();
    // Issue 12: the watcher, a child process with watcher-1's key, serving the freezes the signers pull.
    const watcherUrl = /watcher {7}pid [0-9]+, .*freezes (http:\/\/127\.0\.0\.1:[0-9]+)\/v1\/freezes/.exec(
      out,
    )?.[1];
    expect(watcherUrl).toBeDefined();
    const served = async () =>
      ((await (await fetch(`${watcherUrl}/v1/freezes`)).json()) as { freezes: unknown[] }).freezes;
    expect(await served()).toEqual([]);

    const status = await custos(['status', '--json'], { env: { CUSTOS_HOME: join(state, 'home') } });
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as StatusJson;
    expect(s.coordinator).toMatchObject({ health: 'ok', ready: true });
    expect(s.organization.name).toContain('development only');
    expect(s.wallets[0]).toMatchObject({ id: 'btc-main', multisig: '2-of-3' });
    expect(BigInt(s.wallets[0]!.balance ?? '0')).toBeGreaterThan(0n);
    // The Safe's third owner is the offline backup key, governed as a signer record that never runs;
    // signer-cold is the cold wallet's offline signer (issue 13), whose jobs travel as files.
    expect(s.signers.map((x) => x.id)).toEqual(['signer-1', 'signer-2', 'signer-cold', 'signer-backup']);

    // Issue 13, the exchange shape: the banner names the hot and cold wallets and the cold jobs folder;
    // `custos demo payouts` plays the exchange backend (its sealed key, the exported client): single and
    // batched payouts signed with no approval and mined, until the hot wallet's hourly limit refuses.
    expect(out).toMatch(/hot wallet {4}btc-hot \(2-of-3[^)]*\), balance 3\.00000000 BTC/);
    expect(out).toContain(`cold jobs     ${join(state, 'cold-jobs')}`);
    const payouts = await custos(
      [
        'demo',
        'payouts',
        '--dir',
        state,
        '--count',
        '8',
        '--batch-every',
        '2',
        '--batch-size',
        '6',
        '--rate',
        '5',
        '--json',
      ],
      { cwd: dir, timeoutMs: 150_000 },
    );
    expect(payouts.code, payouts.stdout + payouts.stderr).toBe(0);
    const p = JSON.parse(payouts.stdout) as {
      signed: number;
      confirmed: number;
      refused: Record<string, number>;
      payouts: { kind: string; status: string; txid: string | null }[];
    };
    expect(p.signed).toBeGreaterThanOrEqual(2);
    expect(p.confirmed).toBe(p.signed);
    expect(p.payouts.some((x) => x.kind === 'batch' && x.status === 'confirmed' && x.txid !== null)).toBe(
      true,
    );
    expect(Object.keys(p.refused)).toEqual(['LIMIT_EXCEEDED']);

    // An internal transfer through the command line: the client derives btc-hot's receive address
    // itself and signs the claim; `custos approve` derives it again and says what it is. A wallet
    // paying itself is refused with its code; --to-wallet with --to is a usage error.
    const refill = await custos(
      [
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'btc-cold',
        '--to-wallet',
        'btc-hot',
        '--index',
        '3',
        '--amount',
        '0.2btc',
      ],
      { env: { CUSTOS_HOME: join(state, 'home') } },
    );
    expect(refill.code, refill.stderr).toBe(0);
    expect(refill.stderr).toMatch(
      /internal transfer to wallet btc-hot \(receive index 3\): bcrt1q[0-9a-z]+, derived here/,
    );
    const refillApproval = await custos(['approve', refill.stdout.trim(), '--as', 'approver-1', '--yes'], {
      env: { CUSTOS_HOME: join(state, 'home') },
    });
    expect(refillApproval.code, refillApproval.stderr).toBe(0);
    expect(refillApproval.stdout).toContain('internal transfer to wallet btc-hot (receive index 3)');
    expect(refillApproval.stdout).not.toContain('NOT IN THE ADDRESS BOOK');
    const toItself = await custos(
      [
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'btc-cold',
        '--to-wallet',
        'btc-cold',
        '--amount',
        '0.2btc',
      ],
      { env: { CUSTOS_HOME: join(state, 'home') } },
    );
    expect(toItself.code).toBe(1);
    expect(toItself.stderr).toContain('custos: DESTINATION_NOT_WALLET');
    const both = await custos(
      ['request', '--wallet', 'btc-cold', '--to-wallet', 'btc-hot', '--to', 'bcrt1qxyz', '--amount', '1000'],
      { env: { CUSTOS_HOME: join(state, 'home') } },
    );
    expect(both.code).toBe(2);

    // Issue 9 through the command line: the example request (a lower-case 0x destination, checksummed by
    // the client; the amount in USDT's 6 decimals), a wrong EIP-55 checksum refused with its code,
    // `custos approve` showing the SafeTx it decoded itself, two signer processes, executed on the chain.
    const evmEnv = { CUSTOS_HOME: join(state, 'home') };
    const payee = example![1]!;
    // The checksummed form from the banner with one letter's case flipped: mixed case, wrong EIP-55 checksum.
    const checksummed = /evm payee {5}eth-payee (0x[0-9a-fA-F]{40})/.exec(out)![1]!;
    const letter = checksummed.slice(2).search(/[a-fA-F]/) + 2;
    const flipped = checksummed[letter]!;
    const badCase = `${checksummed.slice(0, letter)}${flipped === flipped.toUpperCase() ? flipped.toLowerCase() : flipped.toUpperCase()}${checksummed.slice(letter + 1)}`;
    const refusedCase = await custos(
      [
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'eth-safe',
        '--asset',
        'usdt',
        '--to',
        badCase,
        '--amount',
        '25usdt',
      ],
      { env: evmEnv },
    );
    expect(refusedCase.code).toBe(1);
    expect(refusedCase.stderr).toContain('custos: ADDRESS_CHECKSUM_INVALID');
    const evmRequest = await custos(
      [
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'eth-safe',
        '--asset',
        'usdt',
        '--to',
        payee,
        '--amount',
        '25usdt',
      ],
      { env: evmEnv },
    );
    expect(evmRequest.code, evmRequest.stderr).toBe(0);
    expect(evmRequest.stderr).toContain('25 USDT (25000000 base units) from eth-safe');
    const evmId = evmRequest.stdout.trim();
    const evmApprove = await custos(['approve', evmId, '--as', 'approver-1', '--yes'], { env: evmEnv });
    expect(evmApprove.code, evmApprove.stderr).toBe(0);
    expect(evmApprove.stdout).toMatch(/^SafeTx {5}not built yet; the one plain transfer this intent allows/m);
    expect(evmApprove.stdout).toMatch(/^ {2}operation {6}0 {2}CALL$/m);
    expect(evmApprove.stdout).toMatch(
      /^ {2}data {11}0xa9059cbb[0-9a-f]+ {2}transfer\(0x[0-9a-fA-F]{40}, 25 USDT/m,
    );
    const evmDone = await eventually(
      async () => {
        const r = await custos(['intents', evmId, '--as', 'approver-1', '--json'], { env: evmEnv });
        const v = JSON.parse(r.stdout) as IntentJson;
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(r.stdout);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the Safe withdrawal to be executed',
      60_000,
    );
    expect(
      evmDone.signers
        .filter((x) => x.outcome === 'signed')
        .map((x) => x.signer)
        .sort(),
    ).toEqual(['signer-1', 'signer-2']);
    const afterEvm = await custos(['status'], { env: evmEnv });
    expect(afterEvm.stdout).toMatch(/eth-safe .* balances 100 ETH \([0-9]+ base units\), 999975 USDT/);
    // The list shows an EVM amount in its unit, from the verified asset registry.
    const evmListed = await custos(['intents', '--as', 'approver-1'], { env: evmEnv });
    expect(evmListed.stdout).toMatch(new RegExp(`^${evmId.slice(0, 12)} +confirmed +25 USDT `, 'm'));

    // The THREATS scenarios against the running deployment, the DMM relay rewrite first.
    const demo = await custos(['demo', 'attacks', '--dir', state], { cwd: dir, timeoutMs: 120_000 });
    expect(demo.code, demo.stdout + demo.stderr).toBe(0);
    expect(demo.stdout).toContain('THREATS 6: DMM Bitcoin');
    expect(demo.stdout).toContain('signer-2 refused: INTENT_SIGNATURE_INVALID');
    for (const code of [
      'SIGNATURE_REQUIRED',
      'REPLAYED_REQUEST',
      'SELF_APPROVAL',
      'DESTINATION_NOT_ALLOWED',
    ]) {
      expect(demo.stdout).toContain(`${code} (expected ${code})`);
    }
    expect(demo.stdout).toContain('10 of 10 attacks stopped');
    // Issue 12: two stolen keys spend outside Custos; the watcher freezes, a withdrawal is refused, the quorum unfreezes.
    expect(demo.stdout).toMatch(
      /THREATS 22: stolen keys[^\n]*\n[^\n]*\n {2}outcome {3}frozen [0-9]+ ms after broadcast by watcher-1 [^\n]*: 422 FROZEN/,
    );
    expect(demo.stdout).toContain('admin-1 and admin-2 unfroze');
    expect(await served()).toHaveLength(1);
    // THREATS 28-29 on the Safe: each replay refused by the real signer-2 with its code and a critical alert.
    for (const incident of ['Bybit', 'WazirX', 'Radiant']) {
      expect(demo.stdout).toMatch(
        new RegExp(
          `THREATS 2[89]: ${incident}[^\\n]*\\n[^\\n]*\\n {2}outcome {3}signer-2 refused: OPERATION_FORBIDDEN \\(critical alert\\)`,
        ),
      );
    }
    expect(demo.stdout).not.toContain('NO AUDIT ENTRY FOUND');

    // Reasons are shown, not hidden: signer-2's refusal of the rewritten job, with its code and its own
    // sentence, in the list and in the intent, and its critical alert in `custos status`.
    const home = { CUSTOS_HOME: join(state, 'home') };
    const listed = await custos(['intents', '--as', 'approver-1', '--json'], { env: home });
    expect(listed.code, listed.stderr).toBe(0);
    const attacked = (JSON.parse(listed.stdout) as (IntentJson & { id: string })[]).find((v) =>
      v.signers.some((x) => x.alert === 'critical'),
    );
    expect(attacked).toBeDefined();
    const shown = await custos(['intents', attacked!.id, '--as', 'approver-1'], { env: home });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /^Signer {5}signer-2: refused INTENT_SIGNATURE_INVALID: .*signature.* \(CRITICAL ALERT\)$/m,
    );
    const single = JSON.parse(
      (await custos(['intents', attacked!.id, '--as', 'approver-1', '--json'], { env: home })).stdout,
    ) as IntentJson;
    // The list and the intent's own view agree.
    expect(single.signers).toEqual(attacked!.signers);
    expect(single.confirmations).toEqual(attacked!.confirmations);
    const alerted = await custos(['status', '--as', 'approver-1'], { env: home, timeoutMs: 120_000 });
    expect(alerted.code, alerted.stderr).toBe(0);
    expect(alerted.stdout).toMatch(
      new RegExp(
        `^ALERT {8}signer-2 raised a critical alert .* on intent ${attacked!.id.slice(0, 12)}: INTENT_SIGNATURE_INVALID: `,
        'm',
      ),
    );
    expect(alerted.stdout).toContain(
      `\`custos intents ${attacked!.id.slice(0, 12)}\` shows it; audit entry `,
    );

    // A large withdrawal, approved twice, waits out its cancel window, and says until when.
    const book = /--to (bcrt1q[0-9a-z]+) --amount 150000/.exec(out)![1]!;
    const large = await custos(
      ['request', '--as', 'requester-1', '--wallet', 'btc-main', '--to', book, '--amount', '0.02btc'],
      { env: home },
    );
    expect(large.code, large.stderr).toBe(0);
    const largeId = large.stdout.trim();
    for (const a of ['approver-1', 'approver-2']) {
      const r = await custos(['approve', largeId, '--as', a, '--yes'], { env: home });
      expect(r.code, r.stderr).toBe(0);
    }
    const waiting = await custos(['intents', largeId, '--as', 'approver-3'], { env: home });
    expect(waiting.stdout).toMatch(
      /^Cancel {5}window ends [0-9T:.-]+Z \(in [0-9]+ (s|min)\): until then any approver can still reject$/m,
    );
    const again1 = await custos(['approve', largeId, '--as', 'approver-1', '--yes'], { env: home });
    expect(again1.code).toBe(1);
    expect(again1.stderr).toMatch(
      /^custos: DUPLICATE_APPROVER: this member already decided on this intent\n {2}you \(approver-1\) already approved this intent [0-9]+ s ago; it is now pending, and nothing was signed$/m,
    );

    // Every process it started (the two signers at least) goes away with it.
    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(3);
    dev.child.kill('SIGINT');
    expect(await exitWithin(dev, 30_000)).toBe(0);
    expect(dev.output()).toContain('custos dev: stopped');
    expect(await leftAlive(children)).toEqual([]);

    // The state survives: the same organization, resumed rather than created.
    const again = start(['dev', '--dir', state, '--port', '0'], { cwd: dir });
    started.push(again);
    await again.waitFor('Ctrl-C stops everything.', 120_000);
    expect(again.output()).toMatch(/ready in [0-9.]+ s \(resumed\)/);
    expect(again.output()).toContain(`genesis       ${s.organization.genesis}`);

    // And it works after the restart: the withdrawal the start-up text suggests goes from request to
    // block (the coordinator's saved wallets come back on regtest, not guessed from the descriptor text).
    const env = { CUSTOS_HOME: join(state, 'home') };
    const to = /--to (bcrt1q[0-9a-z]+) --amount 150000/.exec(again.output())![1]!;
    const requested = await custos(
      ['request', '--as', 'requester-1', '--wallet', 'btc-main', '--to', to, '--amount', '150000'],
      { env },
    );
    expect(requested.code, requested.stderr).toBe(0);
    const id = requested.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const approved = await custos(['approve', id, '--as', 'approver-1', '--yes'], { env });
    expect(approved.code, approved.stderr).toBe(0);
    const done = await eventually(
      async () => {
        const r = await custos(['intents', id, '--as', 'approver-1', '--json'], { env });
        const v = JSON.parse(r.stdout) as IntentJson;
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(r.stdout);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the withdrawal after the restart to be mined',
      120_000,
    );
    expect(
      done.signers
        .filter((x) => x.outcome === 'signed')
        .map((x) => x.signer)
        .sort(),
    ).toEqual(['signer-1', 'signer-2']);
    expect(done.txid).toMatch(/^[0-9a-f]{64}$/);
    expect(done.confirmations).toBeGreaterThanOrEqual(1);

    // The Safe after the restart: a fresh chain, the Safe at the address governance pins, its nonce
    // brought up to what the signers' ledgers signed before, so a withdrawal executes again.
    expect(again.output()).toMatch(/safe {10}eth-safe 0x[0-9a-fA-F]{40} .*balances 100 ETH, 1000000 USDT/);
    const evmAgain = await custos(
      [
        'request',
        '--as',
        'requester-1',
        '--wallet',
        'eth-safe',
        '--asset',
        'eth',
        '--to',
        payee,
        '--amount',
        '0.5eth',
      ],
      { env },
    );
    expect(evmAgain.code, evmAgain.stderr).toBe(0);
    const evmAgainId = evmAgain.stdout.trim();
    expect((await custos(['approve', evmAgainId, '--as', 'approver-1', '--yes'], { env })).code).toBe(0);
    await eventually(
      async () => {
        const r = await custos(['intents', evmAgainId, '--as', 'approver-1', '--json'], { env });
        const v = JSON.parse(r.stdout) as IntentJson;
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(r.stdout);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the Safe withdrawal after the restart to be executed',
      60_000,
    );

    const resumedChildren = descendants(again.child.pid!);
    again.child.kill('SIGINT');
    expect(await exitWithin(again, 30_000)).toBe(0);
    expect(await leftAlive(resumedChildren)).toEqual([]);
  }, 360_000);
});
