/**
 * Cold storage signed offline (issue 13) through the real command line:
 * `custos signer offline` (a child process, its own keystore, config and
 * SQLite ledger) decides job files, and the same jobs go to a real online
 * signer process (`custos signer run`, the same keystore, its own database)
 * through a fake coordinator, so every refusal is compared with the online
 * signer's code for the same bytes. A tampered job file (the intent, an
 * approval, the PSBT, a governance entry) is refused with the online code and
 * nothing is signed: a signed refusal with no PSBT, no ledger row. The same
 * job file again gives the same result byte for byte; another PSBT for the
 * intent is DUPLICATE_INTENT (THREATS 14).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzePsbt, buildPsbt, psbtFromBase64 } from '@custos/bitcoin';
import {
  applyGovernance,
  buildEntry,
  fromHex,
  fromQrChunks,
  type GovernanceState,
  OFFLINE_JOB_KIND,
  offlineResultFile,
  parseJson,
  receiptDigest,
  type SignedGovernanceEntry,
  type SignerJob,
  type SignerResult,
  toQrChunks,
  utf8,
  verifyEd25519,
} from '@custos/core';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import { signBy } from '@custos/test-support/org';
import { ATTACKER } from '@custos/test-support/psbt-fixtures';
import {
  initKeystore,
  type KeystoreInfo,
  PASSWORD,
  type RunningSigner,
  runSigner,
  signerCli,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let online: RunningSigner;
/** Governance entry 1 (a quorum.set keeping the quorum) and the state after it: the head of every job. */
let e1: SignedGovernanceEntry;
let state1: GovernanceState;
let jobs = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-offline-signer-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey });
  // Real time: both processes read their own clocks.
  world.clock.now = Date.now();
  const genesis = world.org.state;
  e1 = signBy(
    buildEntry(
      genesis,
      'quorum.set',
      { quorum: 2, delayMs: genesis.delayMs[0]?.value ?? 0 },
      world.clock.now,
    ),
    world.org.admins.slice(0, 2),
  );
  const next = applyGovernance(genesis, e1, Date.now());
  if (!next.ok) throw new Error(next.message);
  state1 = next.value;
  writeFileSync(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
  for (const name of ['offline', 'fresh']) {
    // The offline signer's config: run's, without a coordinator.
    writeFileSync(
      join(dir, `${name}.json`),
      JSON.stringify({
        id: 'signer-1',
        genesis: world.org.orgId,
        keystore: 'signer-1.key',
        database: `${name}.db`,
        chains: ['bitcoin:regtest'],
        passwordFile: 'password',
      }),
    );
  }
  coordinator = await startFakeCoordinator(new Map([['signer-1', keystore.identityKey]]));
  coordinator.setGovernance([world.org.genesis]);
  online = runSigner(writeConfig(dir, 'signer-1', coordinator.url, world.org.orgId));
  await waitForOutput(online, 'signer.started');
}, 60_000);

afterAll(async () => {
  online?.child.kill('SIGTERM');
  await online?.exited;
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Offline {
  readonly code: number;
  readonly stderr: string;
  /** The result file as written (null when none was). */
  readonly text: string | null;
  readonly result: SignerResult | null;
}

/** `custos signer offline` on a job file; `config` names the signer's database. */
async function offline(file: unknown, config = 'offline', extra: readonly string[] = []): Promise<Offline> {
  const n = jobs++;
  const jobPath = join(dir, `job-${n}.json`);
  const outPath = join(dir, `result-${n}.json`);
  writeFileSync(jobPath, typeof file === 'string' ? file : JSON.stringify(file));
  const r = await signerCli([
    'offline',
    '--config',
    join(dir, `${config}.json`),
    '--job',
    jobPath,
    '--out',
    outPath,
    ...extra,
  ]);
  const text = existsSync(outPath) ? readFileSync(outPath, 'utf8') : null;
  const json =
    text === null || !text.startsWith('CUSTOS1:')
      ? text
      : new TextDecoder().decode(fromQrChunks(text.split('\n')));
  return {
    code: r.code,
    stderr: r.stderr,
    text,
    result: json === null ? null : offlineResultFile.parse(parseJson(json)).result,
  };
}

/** The same job through the online signer process; its result. */
async function onlineCode(job: SignerJob, governance: SignedGovernanceEntry[]): Promise<string | null> {
  coordinator.setGovernance(governance);
  const before = coordinator.results.length;
  coordinator.push(job);
  const results = await coordinator.waitForResults(before + 1);
  return results[before]!.receipt.code;
}

async function ledgerEntries(config = 'offline'): Promise<number> {
  const r = await signerCli(['status', '--config', join(dir, `${config}.json`), '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { ledger: { entries: number } }).ledger.entries;
}

function jobFile(job: SignerJob, governance: unknown[] = [world.org.genesis, e1]) {
  return { v: 1, kind: OFFLINE_JOB_KIND, job, governance };
}

function approvedJob(amount: bigint, id: string): { job: SignerJob; txid: string } {
  const intent = world.intent(amount);
  const built = world.build(intent);
  const job = world.job(intent, world.approve(intent), built.psbt, { id, state: state1 });
  return { job, txid: built.txid };
}

function expectNothingSigned(o: Offline, code: string): void {
  expect(o.code, o.stderr).toBe(1);
  expect(o.stderr).toContain(code);
  // The refusal is signed (the coordinator audits it), the transaction is not.
  expect(o.result?.receipt).toMatchObject({ outcome: 'refused', code, txid: null });
  expect(o.result?.psbt).toBeUndefined();
  expect(
    verifyEd25519(keystore.identityKey, fromHex(receiptDigest(o.result!.receipt)), o.result!.signature),
  ).toBe(true);
}

describe('custos signer offline', () => {
  it('refuses a job file whose governance entry was changed (GOVERNANCE_SIGNATURE_INVALID, as online) and applies nothing', async () => {
    const { job } = approvedJob(1_000_000n, 'job-gov-tampered');
    const forged: SignedGovernanceEntry = {
      ...e1,
      entry: { ...e1.entry, body: { quorum: 1, delayMs: 0 } } as SignedGovernanceEntry['entry'],
    };
    const o = await offline(jobFile(job, [world.org.genesis, forged]), 'fresh');
    expectNothingSigned(o, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(o.result?.alert).toMatchObject({ severity: 'critical', code: 'GOVERNANCE_SIGNATURE_INVALID' });
    expect(await onlineCode(job, [world.org.genesis, forged])).toBe('GOVERNANCE_SIGNATURE_INVALID');
    // The fresh signer took the genesis from the file (checked against its pinned digest) and stopped there.
    const status = await signerCli(['status', '--config', join(dir, 'fresh.json'), '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ governance: { seq: 0 }, ledger: { entries: 0 } });
  }, 60_000);

  let signedText: string;
  let signedJob: SignerJob;

  it('signs a job file as the online signer would, with a receipt by its identity key, after the ledger row is written', async () => {
    const { job, txid } = approvedJob(2_000_000n, 'job-cold-1');
    signedJob = job;
    const o = await offline(jobFile(job));
    expect(o.code, o.stderr).toBe(0);
    const result = o.result!;
    expect(result.receipt).toMatchObject({
      signer: 'signer-1',
      job: 'job-cold-1',
      outcome: 'signed',
      code: null,
      txid,
      governanceSeq: 1,
      governanceHead: state1.head,
    });
    expect(
      verifyEd25519(keystore.identityKey, fromHex(receiptDigest(result.receipt)), result.signature),
    ).toBe(true);
    const psbt = psbtFromBase64(result.psbt!);
    if (!psbt.ok) throw new Error(psbt.message);
    const analysis = analyzePsbt(psbt.value, world.descriptor);
    if (!analysis.ok) throw new Error(analysis.message);
    expect(analysis.value.inputs.map((i) => i.signatures)).toEqual([1]);
    expect(await ledgerEntries()).toBe(1);
    signedText = o.text!;
  }, 60_000);

  it('gives the same result file, byte for byte, for the same job file again (idempotent), and signs nothing more', async () => {
    const again = await offline(jobFile(signedJob));
    expect(again.code, again.stderr).toBe(0);
    expect(again.text).toBe(signedText);
    expect(await ledgerEntries()).toBe(1);
  }, 60_000);

  it('refuses another PSBT for an intent it signed: DUPLICATE_INTENT (THREATS 14), as online', async () => {
    const other = world.build(signedJob.intent, { utxos: world.utxos([3_000_000n]) });
    const job = world.job(signedJob.intent, signedJob.approvals, other.psbt, {
      id: 'job-cold-1-again',
      state: state1,
    });
    const o = await offline(jobFile(job));
    expectNothingSigned(o, 'DUPLICATE_INTENT');
    expect(await ledgerEntries()).toBe(1);
  }, 60_000);

  const tampered: [string, string, (job: SignerJob) => SignerJob][] = [
    [
      'the amount of the intent',
      'INTENT_SIGNATURE_INVALID',
      (j) => ({ ...j, intent: { ...j.intent, intent: { ...j.intent.intent, amount: '9000000' as never } } }),
    ],
    [
      'the destination of the intent',
      'INTENT_SIGNATURE_INVALID',
      (j) => ({ ...j, intent: { ...j.intent, intent: { ...j.intent.intent, to: ATTACKER as never } } }),
    ],
    [
      // A forged approval is not counted: one approval is left of the two the policy asks for (THREATS 7).
      'a byte of an approval signature',
      'QUORUM_NOT_MET',
      (j) => ({
        ...j,
        approvals: j.approvals.map((a, i) =>
          i === 0
            ? {
                ...a,
                signature: { ...a.signature, sig: flipHex((a.signature as { sig: string }).sig) } as never,
              }
            : a,
        ),
      }),
    ],
    [
      'the PSBT (it pays an attacker)',
      'UNEXPECTED_OUTPUT',
      (j) => {
        const built = buildPsbt({
          wallet: world.descriptor,
          utxos: world.utxos([BigInt(j.intent.intent.amount) + 50_000n]),
          to: ATTACKER,
          amount: BigInt(j.intent.intent.amount),
          feeRate: 5n,
          changeIndex: 0,
        });
        if (!built.ok) throw new Error(built.message);
        return world.job(j.intent, j.approvals, built.value.psbt, { id: j.id, state: state1 });
      },
    ],
  ];

  it.each(tampered)(
    'refuses a job file with %s changed (%s, the online signer code): no signature, no ledger row',
    async (_what, code, change) => {
      const { job } = approvedJob(1_500_000n, `job-tampered-${jobs}`);
      const bad = change(job);
      const o = await offline(jobFile(bad));
      expectNothingSigned(o, code);
      expect(await ledgerEntries()).toBe(1);
      expect(await onlineCode(bad, [world.org.genesis, e1])).toBe(code);
    },
    60_000,
  );

  it('writes no result for a job file of another signer, or a file that is not a job file (the operator mistook the media)', async () => {
    const { job } = approvedJob(1_000_000n, 'job-for-signer-2');
    const other = await offline(jobFile({ ...job, signer: 'signer-2' }));
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('NOT_AUTHORIZED');
    expect(other.text).toBeNull();
    const notJob = await offline({ v: 1, kind: 'custos.offline-result', job, governance: [] });
    expect(notJob.code).toBe(1);
    expect(notJob.stderr).toContain('INVALID_VALUE');
    expect(notJob.text).toBeNull();
    expect(await ledgerEntries()).toBe(1);
  }, 60_000);

  it('reads a job file in QR lines (Base45, scanned in any order) and writes its result as QR lines with --qr: the same decision', async () => {
    const { job, txid } = approvedJob(1_200_000n, 'job-cold-qr');
    const lines = toQrChunks(utf8(JSON.stringify(jobFile(job))), 900);
    expect(lines.length).toBeGreaterThan(2);
    const o = await offline([...lines].reverse().join('\n'), 'offline', ['--qr']);
    expect(o.code, o.stderr).toBe(0);
    expect(o.text?.startsWith('CUSTOS1:1/')).toBe(true);
    expect(o.result?.receipt).toMatchObject({ job: 'job-cold-qr', outcome: 'signed', txid });
    expect(await ledgerEntries()).toBe(2);
  }, 60_000);
});

/** The same hex with its first digit changed. */
function flipHex(hex: string): string {
  return (hex[0] === '0' ? '1' : '0') + hex.slice(1);
}
