/**
 * `custos dev`, the one-command local deployment: it starts, prints what to
 * type next, a `custos status` against it works, Ctrl-C (SIGINT) stops every
 * process it started, and a second start resumes from the state folder and
 * completes a withdrawal (request, approval, both signers, mined).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, custos, descendants, eventually, type Running, start } from './support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-dev-'));
const state = join(dir, 'state');
const started: Running[] = [];

afterAll(() => {
  for (const r of started) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function exitWithin(r: Running, ms: number): Promise<number | null | 'timeout'> {
  return Promise.race([r.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ms))]);
}

interface IntentJson {
  status: string;
  statusCode: string | null;
  txid: string | null;
  confirmations: number | null;
  signers: { signer: string; outcome: string | null; code: string | null }[];
}

interface StatusJson {
  organization: { name: string; genesis: string };
  wallets: { id: string; balance: string | null; multisig: string }[];
  signers: { id: string }[];
  coordinator: { health: string; ready: boolean };
}

describe('custos dev', () => {
  it('starts everything, prints the next steps, serves `custos status` and `custos demo attacks`, and SIGINT stops every child; a restart resumes', async () => {
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

    const status = await custos(['status', '--json'], { env: { CUSTOS_HOME: join(state, 'home') } });
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as StatusJson;
    expect(s.coordinator).toMatchObject({ health: 'ok', ready: true });
    expect(s.organization.name).toContain('development only');
    expect(s.wallets[0]).toMatchObject({ id: 'btc-main', multisig: '2-of-3' });
    expect(BigInt(s.wallets[0]!.balance ?? '0')).toBeGreaterThan(0n);
    expect(s.signers.map((x) => x.id)).toEqual(['signer-1', 'signer-2']);

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
    expect(demo.stdout).toContain('6 of 6 attacks stopped');
    expect(demo.stdout).not.toContain('NO AUDIT ENTRY FOUND');

    // Every process it started (the two signers at least) goes away with it.
    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2);
    dev.child.kill('SIGINT');
    expect(await exitWithin(dev, 30_000)).toBe(0);
    expect(dev.output()).toContain('custos dev: stopped');
    expect(children.filter(alive)).toEqual([]);

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

    const resumedChildren = descendants(again.child.pid!);
    again.child.kill('SIGINT');
    expect(await exitWithin(again, 30_000)).toBe(0);
    expect(resumedChildren.filter(alive)).toEqual([]);
  }, 360_000);
});
