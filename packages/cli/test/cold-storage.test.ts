/**
 * Cold storage signed offline (issue 13), end to end on regtest through the
 * command line: a 2-of-3 wallet whose signer-1 runs online (`custos signer
 * run`) and whose signer-2 never polls. Its jobs travel as files: `custos
 * intents export` (an admin), `custos signer offline` (the real signer
 * process, its own keystore and ledger), `custos intents import` (the admin
 * again); the coordinator checks the receipt with signer-2's identity key,
 * combines, broadcasts, and the block pays the intent exactly. A tampered
 * job file is refused with its code and nothing signed, and its imported
 * refusal leaves the refusal and a critical alert in the audit log. The same
 * job file again gives the same result; another PSBT for the intent is
 * DUPLICATE_INTENT (THREATS 14). The files also travel as QR lines
 * (Base45, --qr).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressToScript, buildPsbt, parseBlock, parseDescriptor, psbtToBase64 } from '@custos/bitcoin';
import { fromQrChunks, toQrChunks, utf8 } from '@custos/core';
import { eventually } from '@custos/test-support/cli';
import { type Deployment, startDeployment } from '@custos/test-support/deployment';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface IntentJson {
  id: string;
  status: string;
  statusCode: string | null;
  signers: { signer: string; outcome: string | null; code: string | null; alert: string | null }[];
  txid: string | null;
}

interface ResultFile {
  v: number;
  kind: string;
  result: {
    receipt: { signer: string; job: string; outcome: string; code: string | null; txid: string | null };
    psbt?: string;
    alert?: { severity: string; code: string };
  };
}

interface JobFile {
  v: number;
  kind: string;
  job: {
    id: string;
    signer: string;
    psbt: string;
    intent: { intent: { amount: string } };
  };
  governance: { entry: { seq: number } }[];
}

let w: Deployment;

beforeAll(async () => {
  w = await startDeployment({ offline: ['signer-2'] });
}, 180_000);

afterAll(async () => {
  await w?.stop();
});

const show = (id: string) => w.show<IntentJson>(id);

/** Requested by requester-1, approved by two approvers, then signed by the online signer-1. */
async function approvedAndHalfSigned(amount: string, memo: string): Promise<string> {
  const id = await w.request(amount, memo);
  for (const approver of ['approver-1', 'approver-2']) {
    const r = await w.cli(['approve', id, '--as', approver, '--yes']);
    expect(r.code, r.stderr).toBe(0);
  }
  await eventually(
    async () => {
      const v = await show(id);
      if (v.status !== 'signing') throw new Error(`the intent is ${v.status}: ${JSON.stringify(v)}`);
      return v.signers.some((s) => s.signer === 'signer-1' && s.outcome === 'signed') ? v : undefined;
    },
    'the online signer-1 to sign',
    90_000,
  );
  return id;
}

async function exportJob(id: string, name: string, extra: readonly string[] = []): Promise<string> {
  const out = join(w.dir, name);
  const r = await w.cli([
    'intents',
    'export',
    id,
    '--signer',
    'signer-2',
    '--out',
    out,
    '--as',
    'admin-1',
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain('written to');
  return out;
}

/** The real `custos signer offline` for signer-2 (its config from the deployment; the coordinator is never asked). */
async function signOffline(job: string, name: string, extra: readonly string[] = []) {
  const out = join(w.dir, name);
  const r = await w.cli([
    'signer',
    'offline',
    '--config',
    join(w.dir, 'signer-2.json'),
    '--job',
    job,
    '--out',
    out,
    ...extra,
  ]);
  return { ...r, out, file: () => JSON.parse(readText(out)) as ResultFile };
}

/** A file as JSON text, whether written as JSON or as QR lines (--qr). */
function readText(path: string): string {
  const text = readFileSync(path, 'utf8');
  return text.startsWith('CUSTOS1:') ? new TextDecoder().decode(fromQrChunks(text.split('\n'))) : text;
}

async function ledgerOfSigner2(): Promise<number> {
  const r = await w.cli(['signer', 'status', '--config', join(w.dir, 'signer-2.json'), '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { ledger: { entries: number } }).ledger.entries;
}

function auditOf(id: string): { actor: string; event: string }[] {
  const d = new Database(w.database, { readonly: true });
  try {
    d.pragma('busy_timeout = 5000');
    return d.prepare('SELECT actor, event FROM audit_log WHERE subject = ? ORDER BY seq').all(id) as {
      actor: string;
      event: string;
    }[];
  } finally {
    d.close();
  }
}

describe('cold storage signed offline, on regtest through the command line', () => {
  let paid: string;
  let paidJob: string;
  let paidResult: string;

  it('signer-1 online and signer-2 offline through job files: combined, broadcast and mined, paying the intent exactly', async () => {
    const id = await approvedAndHalfSigned('250000', 'cold refill');
    paid = id;
    paidJob = await exportJob(id, 'job-1.json');
    const job = JSON.parse(readFileSync(paidJob, 'utf8')) as JobFile;
    expect(job).toMatchObject({ v: 1, kind: 'custos.offline-job', job: { signer: 'signer-2' } });
    // signer-2 has never been online: the file carries the chain from the genesis.
    expect(job.governance.map((e) => e.entry.seq)).toEqual([0]);

    const signed = await signOffline(paidJob, 'result-1.json');
    expect(signed.code, signed.stderr).toBe(0);
    const result = signed.file();
    expect(result).toMatchObject({
      v: 1,
      kind: 'custos.offline-result',
      result: { receipt: { signer: 'signer-2', job: job.job.id, outcome: 'signed', code: null } },
    });
    expect(result.result.psbt).toBeDefined();
    expect(await ledgerOfSigner2()).toBe(1);
    paidResult = readFileSync(signed.out, 'utf8');

    const imported = await w.cli(['intents', 'import', signed.out, '--as', 'admin-1', '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({
      intent: id,
      signer: 'signer-2',
      outcome: 'signed',
      code: null,
      status: 'broadcast',
    });
    const broadcast = await show(id);
    expect(broadcast.signers.map((s) => [s.signer, s.outcome]).sort()).toEqual([
      ['signer-1', 'signed'],
      ['signer-2', 'signed'],
    ]);
    expect(broadcast.txid).toBe(result.result.receipt.txid);

    await w.node.mine(1);
    const confirmed = await eventually(
      async () => {
        const v = await show(id);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the transaction to be confirmed',
      60_000,
    );
    const rpc = w.node.rpc;
    const block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(await rpc.getBlockCount())));
    const tx = block.txs.find((t) => t.txid === confirmed.txid);
    expect(tx).toBeDefined();
    const coldScript = Buffer.from(addressToScript(w.cold, 'regtest')!).toString('hex');
    const outputs = Array.from({ length: tx!.tx.outputsLength }, (_, i) => tx!.tx.getOutput(i));
    expect(
      outputs.filter((o) => Buffer.from(o.script!).toString('hex') === coldScript).map((o) => o.amount),
    ).toEqual([250_000n]);

    // Who carried what, and what each signer decided, all in the log; and the log verifies.
    const events = auditOf(id);
    expect(events).toContainEqual({ actor: 'member:admin-1/admin-1-laptop', event: 'signing.exported' });
    expect(events).toContainEqual({ actor: 'member:admin-1/admin-1-laptop', event: 'signing.imported' });
    expect(
      events
        .filter((e) => e.event === 'signing.signed')
        .map((e) => e.actor)
        .sort(),
    ).toEqual(['signer:signer-1', 'signer:signer-2']);
    const audit = await w.cli(['audit', 'verify', '--as', 'admin-1']);
    expect(audit.code, audit.stderr).toBe(0);
  }, 240_000);

  it('gives the same result file for the same job file again, and importing it again changes nothing', async () => {
    const again = await signOffline(paidJob, 'result-1-again.json');
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(again.out, 'utf8')).toBe(paidResult);
    expect(await ledgerOfSigner2()).toBe(1);
    const imported = await w.cli(['intents', 'import', again.out, '--as', 'admin-1', '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ outcome: 'signed', status: 'confirmed' });
  }, 120_000);

  it('refuses another PSBT for the intent it signed offline: DUPLICATE_INTENT (THREATS 14), nothing signed', async () => {
    const parsed = parseDescriptor(w.descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    // A genuine spend of the wallet for the same intent, at another fee: only the ledger tells it apart.
    const other = buildPsbt({
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
      to: w.cold,
      amount: 250_000n,
      feeRate: 7n,
      changeIndex: 2,
    });
    if (!other.ok) throw new Error(other.message);
    const file = JSON.parse(readFileSync(paidJob, 'utf8')) as JobFile;
    file.job.psbt = psbtToBase64(other.value.psbt);
    const path = join(w.dir, 'job-1-other-psbt.json');
    writeFileSync(path, JSON.stringify(file));
    const r = await signOffline(path, 'result-1-other.json');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DUPLICATE_INTENT');
    expect(r.file().result).toMatchObject({
      receipt: { outcome: 'refused', code: 'DUPLICATE_INTENT', txid: null },
    });
    expect(r.file().result.psbt).toBeUndefined();
    expect(await ledgerOfSigner2()).toBe(1);
  }, 120_000);

  it('refuses a tampered job file (the amount) INTENT_SIGNATURE_INVALID with nothing signed; the imported refusal is audited with a critical alert and refuses the intent', async () => {
    const id = await approvedAndHalfSigned('300000', 'cold refill, tampered on the way');
    // This time in QR lines (Base45), both ways.
    const path = await exportJob(id, 'job-2.txt', ['--qr']);
    expect(readFileSync(path, 'utf8')).toMatch(/^CUSTOS1:1\//);
    // Whoever holds the media between the coordinator and the vault rewrites the amount (DMM).
    const file = JSON.parse(readText(path)) as JobFile;
    file.job.intent.intent.amount = '30000000';
    writeFileSync(path, toQrChunks(utf8(JSON.stringify(file))).join('\n'));

    const r = await signOffline(path, 'result-2.txt', ['--qr']);
    expect(readFileSync(r.out, 'utf8')).toMatch(/^CUSTOS1:1\//);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('INTENT_SIGNATURE_INVALID');
    const refused = r.file();
    expect(refused.result.receipt).toMatchObject({
      signer: 'signer-2',
      outcome: 'refused',
      code: 'INTENT_SIGNATURE_INVALID',
      txid: null,
    });
    expect(refused.result.psbt).toBeUndefined();
    expect(refused.result.alert).toMatchObject({ severity: 'critical', code: 'INTENT_SIGNATURE_INVALID' });
    expect(await ledgerOfSigner2()).toBe(1);

    const imported = await w.cli(['intents', 'import', r.out, '--as', 'admin-1', '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({
      intent: id,
      outcome: 'refused',
      code: 'INTENT_SIGNATURE_INVALID',
      status: 'refused',
    });
    const v = await show(id);
    expect(v).toMatchObject({ status: 'refused', statusCode: 'INTENT_SIGNATURE_INVALID' });
    expect(v.signers.find((s) => s.signer === 'signer-2')).toMatchObject({
      outcome: 'refused',
      code: 'INTENT_SIGNATURE_INVALID',
      alert: 'critical',
    });
    const events = auditOf(id);
    expect(events).toContainEqual({ actor: 'signer:signer-2', event: 'signing.refused' });
    expect(events).toContainEqual({ actor: 'signer:signer-2', event: 'alert' });
    expect(events).toContainEqual({ actor: 'member:admin-1/admin-1-laptop', event: 'signing.imported' });
  }, 240_000);

  it('refuses export and import to a member who is neither an admin nor an operator (NOT_AUTHORIZED)', async () => {
    const r = await w.cli(['intents', 'import', join(w.dir, 'result-1.json'), '--as', 'approver-1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NOT_AUTHORIZED');
    const e = await w.cli([
      'intents',
      'export',
      paid,
      '--signer',
      'signer-2',
      '--out',
      join(w.dir, 'nope.json'),
      '--as',
      'requester-1',
    ]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('NOT_AUTHORIZED');
  }, 60_000);
});
