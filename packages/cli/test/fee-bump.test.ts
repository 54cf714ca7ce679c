/**
 * `custos bump` end to end (issue 13, BIP 125), on regtest, against a real
 * coordinator (`custos serve`) and two real signer processes: a withdrawal is
 * requested, approved, signed and broadcast but not mined; its requester
 * bumps the fee from the command line; both signers sign the replacement, the
 * node takes it in place of the original, it is mined and confirms the
 * intent; `custos intents <id>` and `custos status` show the transaction
 * replaced and the replacement. A bump by someone else than the requester and
 * a bump of the confirmed withdrawal are refused, nothing signed.
 */
import { custos, eventually } from '@custos/test-support/cli';
import { type Deployment, startDeployment } from '@custos/test-support/deployment';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Bumped {
  id: string;
  status: string;
  txid: string | null;
  confirmations: number | null;
  bumps?: { id: string; status: string; txid: string; fee: string; replaces: string | null }[];
}

let w: Deployment;

beforeAll(async () => {
  w = await startDeployment();
}, 180_000);

afterAll(async () => {
  await w?.stop();
});

describe('custos bump on regtest, through the command line', () => {
  it('checks its command line before anything else (exit 2)', async () => {
    const help = await custos(['bump', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('custos bump <intent id> --fee-rate <sat/vB>');
    const missing = await w.cli(['bump', 'deadbeefdeadbeef', '--as', 'requester-1']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--fee-rate');
    const bad = await w.cli(['bump', 'deadbeefdeadbeef', '--fee-rate', '2.5', '--as', 'requester-1']);
    expect(bad.code).toBe(2);
  });

  it('bumps a stuck withdrawal: the replacement is mined in place of the original; intents and status show both', async () => {
    const id = await w.request('200000', 'bump me');
    for (const a of ['approver-1', 'approver-2']) {
      const r = await w.cli(['approve', id, '--as', a, '--yes']);
      expect(r.code, r.stderr).toBe(0);
    }
    const broadcast = await eventually(
      async () => {
        const v = await w.show<Bumped>(id);
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
        return v.status === 'broadcast' ? v : undefined;
      },
      'the withdrawal to be broadcast',
      90_000,
    );
    const original = broadcast.txid as string;
    expect(await w.node.rpc.getRawMempool()).toContain(original);

    // Only the requester may bump: nothing signed, refused before anything is sent.
    const other = await w.cli(['bump', id, '--fee-rate', '20', '--as', 'approver-1']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^custos: NOT_AUTHORIZED/);

    const out = await w.cli(['bump', id, '--fee-rate', '20', '--as', 'requester-1', '--json']);
    expect(out.code, out.stderr).toBe(0);
    const requested = JSON.parse(out.stdout) as { txid: string; status: string; replacing: string };
    expect(requested).toMatchObject({ status: 'signing', replacing: original });

    const replaced = await eventually(
      async () => {
        const v = await w.show<Bumped>(id);
        return v.bumps?.[0]?.status === 'broadcast' ? v : undefined;
      },
      'the replacement to be broadcast',
      90_000,
    );
    expect(replaced.txid).toBe(requested.txid);
    expect(replaced.bumps?.[0]).toMatchObject({ txid: requested.txid, replaces: original });
    const mempool = await w.node.rpc.getRawMempool();
    expect(mempool).toContain(requested.txid);
    expect(mempool).not.toContain(original);

    await w.node.mine(1);
    const confirmed = await eventually(
      async () => {
        const v = await w.show<Bumped>(id);
        return v.status === 'confirmed' ? v : undefined;
      },
      'the replacement to confirm the intent',
      60_000,
    );
    expect(confirmed.txid).toBe(requested.txid);
    expect(confirmed.bumps?.[0]?.status).toBe('mined');

    const text = await w.ok(['intents', id, '--as', 'admin-1']);
    expect(text).toContain(`Bump       ${requested.txid}`);
    expect(text).toContain(`mined, replaces ${original}`);
    const status = await w.cli(['status', '--as', 'admin-1', '--json']);
    const shown = (
      JSON.parse(status.stdout) as {
        bumps: { intent: string; replaces: string; txid: string; status: string }[];
      }
    ).bumps;
    expect(shown).toEqual([
      expect.objectContaining({ intent: id, replaces: original, txid: requested.txid, status: 'mined' }),
    ]);
    const plain = await w.cli(['status', '--as', 'admin-1']);
    expect(plain.stdout).toContain(`${original} replaced by ${requested.txid}`);

    // The confirmed withdrawal cannot be bumped again.
    const late = await w.cli(['bump', id, '--fee-rate', '30', '--as', 'requester-1']);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/^custos: NOT_A_REPLACEMENT/);
  }, 240_000);
});
