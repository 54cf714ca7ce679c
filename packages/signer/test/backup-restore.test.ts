/**
 * docs/operations.md "Backup and restore": a signer restored from its backup
 * keeps its memory of what it signed (THREATS 14 and 20 across a restore).
 *
 * A real `custos signer run` signs an intent; while it runs, its keystore is
 * copied and its SQLite ledger backed up online (better-sqlite3's
 * `db.backup()`, the SQLite online backup API, consistent under WAL). The
 * originals are then destroyed, the backup restored into a new directory and
 * a new signer process started from it. It refuses the same intent with
 * another transaction (DUPLICATE_INTENT, nothing signed, the refusal in its
 * own decision log), gives the stored answer for the same transaction, and
 * its rolling limit still counts the signing made before the backup.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { psbtToBase64 } from '@custos/bitcoin';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  initKeystore,
  PASSWORD,
  type RunningSigner,
  runSigner,
  signerCli,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import { makeWorld } from '@custos/test-support/world';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand } from './support/stand.js';

const original = mkdtempSync(join(tmpdir(), 'custos-signer-original-'));
const backup = mkdtempSync(join(tmpdir(), 'custos-signer-backup-'));
const restored = mkdtempSync(join(tmpdir(), 'custos-signer-restored-'));
let coordinator: FakeCoordinator | undefined;
let first: RunningSigner | undefined;
let second: RunningSigner | undefined;

afterAll(async () => {
  for (const s of [first, second]) s?.child.kill('SIGTERM');
  await Promise.all([first?.exited, second?.exited]);
  await coordinator?.close();
  for (const d of [original, backup, restored]) rmSync(d, { recursive: true, force: true });
});

describe('a signer restored from its backup', () => {
  it('THREATS 14: still refuses another transaction for an intent it signed before the backup (DUPLICATE_INTENT), gives the stored answer for the same one, and its rolling limit still counts it', async () => {
    const keystore = await initKeystore(original, 'signer-1');
    // The fixture policy allows 1 BTC a day from the wallet.
    const world = makeWorld({ firstKey: keystore.descriptorKey });
    world.clock.now = Date.now();
    ({ coordinator, signer: first } = await startStand(original, keystore, world));

    const signed = world.withdrawal(60_000_000n, { id: 'before-backup' });
    coordinator.push(signed.job);
    const [before] = await coordinator.waitForResults(1);
    expect(before!.receipt).toMatchObject({
      outcome: 'signed',
      intent: signed.digest,
      txid: signed.built.txid,
    });

    // The backup, taken while the signer runs: the keystore is a sealed file (its password is
    // kept elsewhere); the ledger goes through SQLite's online backup, never a plain copy.
    copyFileSync(join(original, 'signer-1.key'), join(backup, 'signer-1.key'));
    const live = new Database(join(original, 'signer-1.db'), { readonly: true, fileMustExist: true });
    try {
      await live.backup(join(backup, 'signer-1.db'));
    } finally {
      live.close();
    }
    expect(first.child.exitCode).toBeNull();

    // The host is lost: the process and every original file.
    first.child.kill('SIGKILL');
    await first.exited;
    rmSync(original, { recursive: true, force: true });
    expect(existsSync(original)).toBe(false);

    // Restored on a new host: the backed-up files, a configuration written again.
    for (const f of readdirSync(backup)) copyFileSync(join(backup, f), join(restored, f));
    const config = writeConfig(restored, 'signer-1', coordinator.url, world.org.orgId);
    const status = await signerCli(['status', '--config', config, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      signer: 'signer-1',
      frozen: false,
      governance: { seq: 0 },
      ledger: { entries: 1 },
    });
    second = runSigner(config);
    await waitForOutput(second, 'signer.started');

    // The same intent with another transaction: refused, nothing signed, a critical alert.
    const other = world.build(signed.intent, { utxos: world.utxos([70_000_000n]) });
    expect(other.txid).not.toBe(signed.built.txid);
    coordinator.push({ ...signed.job, id: 'other-tx', psbt: psbtToBase64(other.psbt) });
    const duplicate = (await coordinator.waitForResults(2))[1]!;
    expect(duplicate.receipt).toMatchObject({
      job: 'other-tx',
      outcome: 'refused',
      code: 'DUPLICATE_INTENT',
    });
    expect(duplicate.psbt).toBeUndefined();
    expect(duplicate.alert).toEqual({ severity: 'critical', code: 'DUPLICATE_INTENT' });

    // The same transaction again: the answer it stored before the backup, receipt and signatures.
    coordinator.push({ ...signed.job, id: 'same-tx' });
    const again = (await coordinator.waitForResults(3))[2]!;
    expect(again.receipt).toEqual(before!.receipt);
    expect(again.psbt).toBe(before!.psbt);

    // 0.6 BTC signed before the backup + 0.5 BTC > 1 BTC a day; 0.3 BTC still fits.
    coordinator.push(world.withdrawal(50_000_000n, { id: 'over-limit' }).job);
    const over = (await coordinator.waitForResults(4))[3]!;
    expect(over.receipt).toMatchObject({ job: 'over-limit', outcome: 'refused', code: 'LIMIT_EXCEEDED' });
    expect(over.psbt).toBeUndefined();
    coordinator.push(world.withdrawal(30_000_000n, { id: 'within-limit' }).job);
    const within = (await coordinator.waitForResults(5))[4]!;
    expect(within.receipt).toMatchObject({ job: 'within-limit', outcome: 'signed' });

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const store = new SignerStore(join(restored, 'signer-1.db'));
    try {
      // Two transactions in the ledger, one per intent; every refusal in the signer's own log
      // (the repeat is the stored answer, not a new decision).
      expect(store.ledgerCount()).toBe(2);
      expect(store.allLedger().find((r) => r.intent === signed.digest)?.txid).toBe(signed.built.txid);
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['before-backup', 'signed', null],
        ['other-tx', 'refused', 'DUPLICATE_INTENT'],
        ['over-limit', 'refused', 'LIMIT_EXCEEDED'],
        ['within-limit', 'signed', null],
      ]);
    } finally {
      store.close();
    }
    expect(second.output()).not.toContain(PASSWORD);
  }, 120_000);
});
