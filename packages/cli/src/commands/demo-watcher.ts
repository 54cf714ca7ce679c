/**
 * `custos demo attacks`, the stolen-key scenario (issue 12, THREATS 22): a
 * thief holding two of the three keys of the dev wallet (the offline backup
 * key and signer-1's keystore, both on disk in the state folder, unlocked with
 * their passwords) spends a coin of the wallet without Custos: no intent, no
 * approval, no signer process. The transaction is built and signed here and
 * sent to the node, as any wallet software would do with the same keys.
 *
 * What the demo shows: the watcher `custos dev` runs sees the spend in the
 * node's mempool, finds no signer's receipt for its txid in the audit log,
 * and freezes (the time from broadcast to the freeze applied on the
 * coordinator is measured); a withdrawal asked for after it is refused
 * `FROZEN`; then admin-1 and admin-2 unfreeze through the ordinary quorum
 * flow (propose, co-sign), so the deployment keeps working for the next run.
 *
 * The thief takes 0.01 BTC and sends the rest of the coin back to the
 * wallet (a test spend, as thieves make before the large one): a theft of
 * any size is unexplained, and the dev wallet stays funded however often the
 * demo runs. In production the runbook (docs/operations.md) rotates the
 * stolen keys before anyone unfreezes; here they stay as they are.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  BitcoinRpc,
  buildPsbt,
  combinePsbts,
  deriveAddress,
  finalizePsbt,
  parseDescriptor,
  parseTransaction,
  signPsbt,
  syncChain,
  UtxoTracker,
  type WalletDescriptor,
} from '@custos/bitcoin';
import {
  buildEntry,
  type GovernanceState,
  isBitcoinWallet,
  type SignedGovernanceEntry,
  signEntry,
  signGovernanceEntry,
  toHex,
  verifyGovernanceChain,
} from '@custos/core';
import { unlockKeystore } from '@custos/signer/keystore';
import { CustosClient, memberSigner } from '../client.js';
import type { Context } from '../context.js';
import { demoAddress } from '../dev/org.js';
import type { DevFolder } from '../dev/state.js';
import { type DeviceIdentity, unlockDevice } from '../device.js';
import type { Home } from '../home.js';

export interface StolenKeyOutcome {
  readonly threat: string;
  readonly title: string;
  readonly attack: string;
  readonly expected: string;
  readonly got: string;
  readonly nothing: string;
  readonly audit: string;
  readonly ok: boolean;
  readonly pass: string;
  /** Broadcast to the freeze applied on the coordinator, ms (null when no freeze came). */
  readonly latencyMs: number | null;
}

export interface StolenKeyDemo {
  readonly ctx: Context;
  readonly folder: DevFolder;
  readonly home: Home;
  readonly genesis: string;
  readonly wallet: string;
  readonly coordinator: string;
  /** A properly signed withdrawal of `amount` sat to the address book, posted by requester-1: the error it gets. */
  readonly withdraw: (amount: bigint) => Promise<{ status: number | null; code: string }>;
  /** The first audit entry after `after` that matches, described. */
  readonly auditAfter: (
    after: number,
    match: (e: { event: string; subject: string }) => boolean,
  ) => Promise<string>;
  readonly auditHead: () => Promise<number>;
}

/** What the thief takes: small, so the dev wallet stays funded however often the demo runs. */
const STOLEN = 1_000_000n;
const FREEZE_TIMEOUT_MS = 15_000;
const GAP = 20;

export async function stolenKeys(d: StolenKeyDemo): Promise<StolenKeyOutcome> {
  const base = {
    threat: '22',
    title:
      'stolen keys (Coincheck, Ronin, DMM): two of three keys spend a coin without Custos; the watcher freezes',
    expected: 'a freeze by the watcher within a second, then FROZEN',
    pass: 'PASS: the spend was frozen on, the next withdrawal refused, the quorum unfroze',
  };
  const fail = (got: string): StolenKeyOutcome => ({
    ...base,
    attack: 'the backup key and signer-1’s keystore sign a spend of a wallet coin outside Custos',
    got,
    nothing: '-',
    audit: '-',
    ok: false,
    latencyMs: null,
  });
  const configPath = d.folder.path('watcher.json');
  if (!existsSync(configPath)) return fail('no watcher in this deployment: restart `custos dev` to get one');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as {
    bitcoin: { rpcUrl: string; rpcUser: string; rpcPasswordFile: string };
  };
  const rpc = new BitcoinRpc({
    url: config.bitcoin.rpcUrl,
    username: config.bitcoin.rpcUser,
    password: readFileSync(resolve(dirname(configPath), config.bitcoin.rpcPasswordFile), 'utf8').trim(),
  });
  const [admin1, admin2] = await Promise.all(
    ['admin-1', 'admin-2'].map((a) => unlockDevice(d.home, a, { env: {} })),
  );
  const client = (who: DeviceIdentity) =>
    new CustosClient({ baseUrl: d.coordinator, signer: memberSigner(who) });
  const asAdmin1 = client(admin1!);
  const asAdmin2 = client(admin2!);
  const verified = async (): Promise<GovernanceState> => {
    const entries = await asAdmin1.governanceEntries(-1);
    const now = d.ctx.now();
    const chain = verifyGovernanceChain(
      d.genesis as GovernanceState['head'],
      entries.map((signed) => ({ signed, seenAt: now })),
    );
    if (!chain.ok) throw new Error(`governance does not verify: ${chain.message}`);
    return chain.value;
  };
  const before = await verified();
  if (before.frozen !== null) {
    return fail(
      `the deployment is frozen already (${before.frozen.reason}): two admins unfreeze it first (custos governance propose unfreeze)`,
    );
  }
  const w = before.wallets.get(d.wallet);
  if (w === undefined || !isBitcoinWallet(w)) return fail(`no Bitcoin wallet ${d.wallet}`);
  const parsed = parseDescriptor(w.descriptor, 'regtest');
  if (!parsed.ok) return fail(parsed.message);
  const descriptor = parsed.value;

  // The thief's view of the wallet: its coins on the chain, none a transaction in the mempool spends.
  const coin = await pickCoin(rpc, d.wallet, descriptor);
  if (coin === null) return fail(`no confirmed coin of ${d.wallet} above 0.02 BTC to steal`);
  const attacker = demoAddress('attacker');
  const built = buildPsbt({
    wallet: descriptor,
    utxos: [coin],
    to: attacker,
    amount: STOLEN,
    feeRate: 2n,
    changeIndex: 0,
  });
  if (!built.ok) return fail(built.message);
  const signed: Uint8Array[] = [];
  for (const id of ['backup', 'signer-1']) {
    const keystore = await unlockKeystore(resolve(d.folder.signerDir(), `${id}.key`), d.folder.password(id));
    const s = signPsbt(built.value.psbt, keystore.key, descriptor);
    if (!s.ok) return fail(`${id}: ${s.code}: ${s.message}`);
    signed.push(s.value.psbt);
  }
  const combined = combinePsbts(signed);
  if (!combined.ok) return fail(combined.message);
  const tx = finalizePsbt(combined.value);
  if (!tx.ok) return fail(tx.message);

  const auditBefore = await d.auditHead();
  const headBefore = before.seq;
  const t0 = performance.now();
  const txid = await rpc.sendRawTransaction(tx.value.hex);
  let freeze: SignedGovernanceEntry | undefined;
  for (const deadline = Date.now() + FREEZE_TIMEOUT_MS; Date.now() < deadline; ) {
    const head = await asAdmin1.governanceHead();
    if (head !== null && head.seq > headBefore) {
      freeze = (await asAdmin1.governanceEntries(headBefore)).find((e) => e.entry.seq === headBefore + 1);
      break;
    }
    await sleep(20);
  }
  const latencyMs = freeze === undefined ? null : Math.round(performance.now() - t0);
  const attack = `the backup key and signer-1’s keystore sign, outside Custos, a spend of ${coin.txid.slice(0, 12)}...:${coin.vout} (${formatBtc(coin.value)} BTC): ${formatBtc(STOLEN)} BTC to ${attacker}, the rest back to the wallet; sent to the node as ${txid.slice(0, 16)}...`;
  const frozenByWatcher =
    freeze !== undefined &&
    freeze.entry.kind === 'freeze' &&
    freeze.signatures.some((s) => s.member === 'watcher-1') &&
    JSON.stringify(freeze.entry.body).includes(txid);
  if (freeze === undefined || !frozenByWatcher) {
    return {
      ...fail(
        freeze === undefined
          ? `no freeze within ${FREEZE_TIMEOUT_MS / 1000} s (see ${d.folder.path('logs', 'watcher.log')})`
          : `governance entry ${freeze.entry.seq} is a ${freeze.entry.kind}, not the watcher's freeze naming ${txid}`,
      ),
      attack,
    };
  }

  // A withdrawal after it: refused at the coordinator's door, nothing stored or signed.
  const refused = await d.withdraw(50_000n);
  const frozenAudit = await d.auditAfter(auditBefore, (e) => e.event === 'frozen');
  const refusedAudit = await d.auditAfter(auditBefore, (e) => e.event === 'intent.refused');

  // The runbook's last step: two admins unfreeze (in production, after the stolen keys are rotated).
  const state = await verified();
  const unfreeze = buildEntry(
    state,
    'unfreeze',
    { reason: `custos demo attacks: the stolen-key scenario is over (theft ${txid})` },
    d.ctx.now(),
  );
  const proposed = await asAdmin1.propose(signGovernanceEntry(unfreeze, [admin1!]));
  if (proposed.status !== 'applied' && proposed.id !== undefined) {
    await asAdmin2.cosign(proposed.id, [signEntry(unfreeze, admin2!)]);
  }
  const after = await verified();
  const unfrozen = after.frozen === null && after.seq === unfreeze.seq;
  return {
    ...base,
    attack,
    got: `frozen ${latencyMs} ms after broadcast by watcher-1 (governance entry #${freeze.entry.seq}, reason names the txid); a withdrawal then: ${`${refused.status ?? ''} ${refused.code}`.trim()}`,
    nothing: `the thief's ${formatBtc(STOLEN)} BTC left (the keys were real); the withdrawal after it was not stored, nothing signed; ${unfrozen ? `admin-1 and admin-2 unfroze (entry #${unfreeze.seq}): the deployment works again` : 'THE UNFREEZE DID NOT APPLY: unfreeze with two admins (custos governance propose unfreeze)'}`,
    audit: `${frozenAudit}; ${refusedAudit}`,
    ok: refused.code === 'FROZEN' && unfrozen,
    latencyMs,
  };
}

/** The smallest confirmed, spendable coin of the wallet above 0.02 BTC that no mempool transaction spends. */
async function pickCoin(rpc: BitcoinRpc, wallet: string, descriptor: WalletDescriptor) {
  const scripts = new Map<string, { branch: 0 | 1; index: number }>();
  const derived: [number, number] = [0, 0];
  const derive = (branch: 0 | 1, upto: number): void => {
    for (let i = derived[branch]; i < upto; i++) {
      scripts.set(toHex(deriveAddress(descriptor, branch, i).script), { branch, index: i });
    }
    derived[branch] = Math.max(derived[branch], upto);
  };
  derive(0, GAP);
  derive(1, GAP);
  const tracker = new UtxoTracker((script) => {
    const hit = scripts.get(toHex(script));
    if (hit === undefined) return null;
    derive(hit.branch, hit.index + 1 + GAP);
    return { wallet, ...hit };
  });
  for (;;) {
    const r = await syncChain(rpc, tracker, { maxBlocks: 1000 });
    if (r.caughtUp) break;
  }
  const spent = new Set<string>();
  for (const id of await rpc.getRawMempool()) {
    const raw = await rpc.getRawTransaction(id).catch(() => null);
    if (raw === null) continue; // mined or replaced since the list
    const { tx } = parseTransaction(raw);
    for (let i = 0; i < tx.inputsLength; i++) {
      const input = tx.getInput(i);
      if (input.txid !== undefined) spent.add(`${toHex(input.txid)}:${input.index}`);
    }
  }
  const tip = tracker.tip?.height ?? 0;
  const coins = tracker
    .utxos(wallet)
    .filter(
      (u) =>
        u.value > 2n * STOLEN &&
        u.confirmations(tip) >= (u.coinbase ? 100 : 1) &&
        !spent.has(`${u.txid}:${u.vout}`),
    )
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return coins[0] ?? null;
}

function formatBtc(sat: bigint): string {
  return `${sat / 100_000_000n}.${(sat % 100_000_000n).toString().padStart(8, '0')}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
