/**
 * Fee bumps signed offline (issue 13): `custos signer offline` (a child
 * process, its own keystore and SQLite ledger) decides a job file carrying a
 * bump with the same rule as the online signer: a replacement that changes a
 * payee output is refused NOT_A_REPLACEMENT with nothing signed; the honest
 * replacement of the withdrawal it signed is signed, recorded beside the
 * original, and its ledger still holds one entry for the intent.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReplacement } from '@custos/bitcoin';
import {
  type Amount,
  type Bump,
  bumpDigest,
  type Hex,
  intentDigest,
  OFFLINE_JOB_KIND,
  offlineResultFile,
  parseJson,
  type SignedBump,
  type SignedIntent,
  type SignerJob,
  type SignerResult,
  signDigest,
} from '@custos/core';
import { editPsbt } from '@custos/test-support/psbt-fixtures';
import { initKeystore, PASSWORD, signerCli } from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let world: World;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-offline-bump-'));
  const keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey });
  world.clock.now = Date.now();
  writeFileSync(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'offline.json'),
    JSON.stringify({
      id: 'signer-1',
      genesis: world.org.orgId,
      keystore: 'signer-1.key',
      database: 'offline.db',
      chains: ['bitcoin:regtest'],
      passwordFile: 'password',
    }),
  );
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function offline(
  job: SignerJob,
): Promise<{ code: number; stderr: string; result: SignerResult | null }> {
  const k = n++;
  const jobPath = join(dir, `job-${k}.json`);
  const outPath = join(dir, `result-${k}.json`);
  writeFileSync(
    jobPath,
    JSON.stringify({ v: 1, kind: OFFLINE_JOB_KIND, job, governance: [world.org.genesis] }),
  );
  const r = await signerCli([
    'offline',
    '--config',
    join(dir, 'offline.json'),
    '--job',
    jobPath,
    '--out',
    outPath,
  ]);
  const result = existsSync(outPath)
    ? offlineResultFile.parse(parseJson(readFileSync(outPath, 'utf8'))).result
    : null;
  return { code: r.code, stderr: r.stderr, result };
}

function bumpOf(intent: SignedIntent, feeRate: bigint): SignedBump {
  const b: Bump = {
    v: 1,
    org: world.org.orgId,
    intent: intentDigest(intent.intent),
    feeRate: feeRate.toString() as Amount,
    requester: world.org.requester.id,
    device: world.org.requester.device.id,
    nonce: (n + 1000).toString(16).padStart(32, 'd') as Hex,
    createdAt: Date.now() - 1000,
    expiresAt: Date.now() + 3_600_000,
  };
  return { bump: b, signature: signDigest(world.org.requester.device.secretKey, bumpDigest(b)) };
}

describe('custos signer offline and fee bumps', () => {
  it('refuses a bump whose replacement changes a payee output and signs the honest one; the ledger counts the intent once', async () => {
    const intent = world.intent(2_000_000n);
    const built = world.build(intent, { feeRate: 2n });
    const approvals = world.approve(intent);
    const original = await offline(world.job(intent, approvals, built.psbt, { id: 'cold-1' }));
    expect(original.code, original.stderr).toBe(0);
    expect(original.result?.receipt).toMatchObject({ outcome: 'signed', txid: built.txid });

    const honest = buildReplacement(built.psbt, world.descriptor, 12n);
    if (!honest.ok) throw new Error(honest.message);
    const tampered = editPsbt(honest.value.psbt, (p) => {
      const payee = p.global.unsignedTx.outputs.findIndex((o) => o.amount === 2_000_000n);
      p.global.unsignedTx.outputs[payee]!.amount -= 1000n;
    });
    const refused = await offline({
      ...world.job(intent, approvals, tampered, { id: 'cold-bump-1' }),
      bump: bumpOf(intent, 12n),
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('NOT_A_REPLACEMENT');
    expect(refused.result?.receipt).toMatchObject({
      outcome: 'refused',
      code: 'NOT_A_REPLACEMENT',
      txid: null,
    });
    expect(refused.result?.psbt).toBeUndefined();
    expect(refused.result?.alert).toMatchObject({ severity: 'critical', code: 'NOT_A_REPLACEMENT' });

    const signed = await offline({
      ...world.job(intent, approvals, honest.value.psbt, { id: 'cold-bump-2' }),
      bump: bumpOf(intent, 12n),
    });
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.result?.receipt).toMatchObject({ outcome: 'signed', txid: honest.value.txid });
    expect(signed.result?.psbt).toBeDefined();

    const status = await signerCli(['status', '--config', join(dir, 'offline.json'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ ledger: { entries: 1, replacements: 1 } });
    const text = await signerCli(['status', '--config', join(dir, 'offline.json')]);
    expect(text.stdout).toContain('ledger: 1 signed, 1 fee-bump replacement(s) beside them');
    const db = new Database(join(dir, 'offline.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT txid FROM ledger').all()).toEqual([{ txid: built.txid }]);
      expect(db.prepare('SELECT txid, replaces FROM replacements').all()).toEqual([
        { txid: honest.value.txid, replaces: built.txid },
      ]);
    } finally {
      db.close();
    }
  }, 90_000);
});
