/**
 * `custos demo payouts` (issue 13): the exchange backend of `custos dev`,
 * played for real. It is what an exchange's withdrawal service would run: it
 * opens the service requester's sealed key file (exchange-backend.key), and
 * through the exported client (`@custos/cli/client`: CustosClient,
 * openSealedDeviceKey, submitTransfer) sends a stream of customer
 * withdrawals from the hot wallet to fresh regtest addresses, single and
 * batched, each intent signed by the service's own device key.
 *
 * Nothing is simulated: the coordinator previews the policy (the automated
 * `payouts` rule, no approval), the two signer processes decide each payout
 * from their own ledgers, and the dev miner confirms what is broadcast.
 * Past the hot wallet's hourly limit the payouts are refused LIMIT_EXCEEDED:
 * by the signers while the coordinator has not yet seen the earlier ones
 * signed, at the door after. That is the automated tier working: what a
 * stolen backend key gets signed is bounded by the limits, shown as such.
 *
 * Bounded: at most --count intents (1..200), at --rate per second, then a
 * wait for their outcome bounded by --wait seconds; it stops by itself.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { scriptToAddress } from '@custos/bitcoin';
import { CustosError } from '@custos/core';
import { CustosClient, openSealedDeviceKey } from '../client.js';
import { type Command, commonHelp } from '../command.js';
import { DEFAULT_DEV_DIR, DevFolder } from '../dev/state.js';
import { Home } from '../home.js';
import { formatSats, toJson, UsageError } from '../output.js';

/** Statuses after which an intent changes no more, for this demo. */
const SETTLED = new Set(['confirmed', 'refused', 'rejected', 'expired']);
const SIGNED = new Set(['signed', 'broadcast', 'confirmed']);

interface Payout {
  readonly n: number;
  readonly kind: 'single' | 'batch';
  readonly outputs: readonly { to: string; amount: string }[];
  readonly amount: string;
  id: string | null;
  status: string;
  code: string | null;
  message: string | null;
  txid: string | null;
}

export const demoPayouts: Command = {
  name: 'demo payouts',
  summary: "play the exchange backend: a stream of customers' withdrawals from the dev hot wallet",
  help: `custos demo payouts [--dir .custos-dev] [--count 20] [--batch-every 5] [--batch-size 3] [--rate 2] [--wait 120] [--json]

Acts as the exchange backend of the running \`custos dev\` deployment (start it
first): opens the service requester's sealed key file (exchange-backend.key)
and, through the exported client (@custos/cli/client), sends customer
withdrawals from the hot wallet to fresh regtest addresses: single payouts,
and every --batch-every-th one a batch paying --batch-size customers in one
transaction. Each is allowed by the automated rule (no approval) and signed
by both signers from their own ledgers, until the hot wallet's hourly limit
is reached: then LIMIT_EXCEEDED, expected, and shown as such. Prints each
intent's id, status and txid as it goes, then how many were signed and how
many refused, and why. Stops by itself.

Options:
  --dir <path>        the state folder of \`custos dev\` (default .custos-dev)
  --count <n>         withdrawals to send, 1 to 200 (default 20)
  --batch-every <k>   every k-th withdrawal is a batch; 0 for none (default 5)
  --batch-size <n>    customers per batch, 2 to 50 (default 3)
  --rate <r>          withdrawals per second, 0.1 to 20 (default 2)
  --wait <s>          how long to wait for their outcome, 1 to 600 s (default 120)

Exit 0 when every payout was signed or refused LIMIT_EXCEEDED; 1 otherwise.

Example:
  custos demo payouts --count 30 --batch-every 4
${commonHelp(['json', 'help'])}`,
  options: {
    dir: { type: 'string' },
    count: { type: 'string' },
    'batch-every': { type: 'string' },
    'batch-size': { type: 'string' },
    rate: { type: 'string' },
    wait: { type: 'string' },
  },
  common: ['json', 'help'],
  async run(ctx, args) {
    const count = args.int('count', { min: 1, max: 200 }) ?? 20;
    const batchEvery = args.int('batch-every', { min: 0, max: 200 }) ?? 5;
    const batchSize = args.int('batch-size', { min: 2, max: 50 }) ?? 3;
    const rate = parseRate(args.str('rate'));
    const waitMs = (args.int('wait', { min: 1, max: 600 }) ?? 120) * 1000;
    const json = args.bool('json');
    const folder = new DevFolder(resolve(ctx.cwd, args.str('dir') ?? DEFAULT_DEV_DIR));
    const state = folder.state();
    const config = new Home(folder.home).config();
    if (state === null || config.coordinator === undefined) {
      throw new CustosError(
        'UNAVAILABLE',
        `no custos dev deployment in ${folder.dir}: start it with \`npm run dev\``,
      );
    }
    const ex = state.exchange;
    if (ex === undefined) {
      throw new CustosError(
        'NOT_FOUND',
        'this custos dev deployment predates the exchange shape: `custos dev --reset` to get it',
      );
    }
    // The backend's way in: its sealed key file and the password from its secret store.
    const signer = await openSealedDeviceKey(folder.serviceKey, folder.password(ex.service));
    const client = new CustosClient({ baseUrl: config.coordinator, signer });
    await client.health();
    const out = (text: string): void => {
      if (!json) ctx.io.out(text);
    };
    out(
      `custos demo payouts: ${count} customer withdrawals from ${ex.hot} as ${signer.member}/${signer.device}` +
        `${batchEvery > 0 ? `, every ${batchEvery}th a batch of ${batchSize}` : ''}, ${rate}/s\n`,
    );

    const payouts: Payout[] = [];
    for (let n = 1; n <= count; n++) {
      const kind = batchEvery > 0 && n % batchEvery === 0 ? 'batch' : 'single';
      const outputs = Array.from({ length: kind === 'batch' ? batchSize : 1 }, () => ({
        to: freshAddress(),
        amount: customerAmount().toString(),
      }));
      const amount = outputs.reduce((s, o) => s + BigInt(o.amount), 0n).toString();
      const p: Payout = {
        n,
        kind,
        outputs,
        amount,
        id: null,
        status: 'sending',
        code: null,
        message: null,
        txid: null,
      };
      payouts.push(p);
      try {
        const answer = await client.submitTransfer({
          org: state.genesis,
          wallet: ex.hot,
          chain: 'bitcoin:regtest',
          asset: 'BTC',
          amount,
          to: outputs[0]!.to,
          memo: `customer withdrawal ${n}`,
          ...(kind === 'batch' ? { outputs } : {}),
        });
        p.id = answer.id;
        p.status = answer.status;
      } catch (err) {
        if (!(err instanceof CustosError)) throw err;
        // Refused at the door (the coordinator's preview): nothing stored, nothing to sign.
        p.status = 'refused';
        p.code = err.code;
        p.message = err.message;
      }
      out(`${describe(p)}\n`);
      if (n < count) await sleep(1000 / rate);
    }

    // Their outcome, as the coordinator reports it (bounded wait; the dev miner confirms).
    const deadline = Date.now() + waitMs;
    for (let round = 0; round < 10_000; round++) {
      const open = payouts.filter((p) => p.id !== null && !SETTLED.has(p.status));
      if (open.length === 0 || Date.now() > deadline) break;
      for (const p of open) {
        const v = await client.intent(p.id as string).catch(() => null);
        if (v === null) continue;
        // The hot wallet is 2-of-3 with two signers online: one online refusal leaves the intent
        // waiting (in `signing`) for the offline key, which no payout gets. It is refused, for the desk.
        const refusal = v.status === 'signing' ? v.signers.find((x) => x.outcome === 'refused') : undefined;
        if (refusal !== undefined) {
          p.status = 'refused';
          p.code = refusal.code;
          p.message = `${refusal.signer} refused: ${refusal.message ?? refusal.code}; only the offline key could still sign`;
          out(`${describe(p)}\n`);
          continue;
        }
        if (v.status === p.status) continue;
        p.status = v.status;
        p.code = v.statusCode;
        p.message = v.statusMessage;
        p.txid = v.txid;
        if (SETTLED.has(v.status) || v.status === 'broadcast') out(`${describe(p)}\n`);
      }
      await sleep(500);
    }

    const signed = payouts.filter((p) => SIGNED.has(p.status));
    const refused = payouts.filter((p) => !SIGNED.has(p.status) && p.code !== null);
    const pending = payouts.filter((p) => !SIGNED.has(p.status) && p.code === null);
    const byCode = new Map<string, number>();
    for (const p of refused) byCode.set(p.code as string, (byCode.get(p.code as string) ?? 0) + 1);
    const unexpected = [...byCode.keys()].filter((c) => c !== 'LIMIT_EXCEEDED');
    const sats = signed.reduce((s, p) => s + BigInt(p.amount), 0n);
    if (json) {
      ctx.io.out(
        toJson({
          signed: signed.length,
          confirmed: signed.filter((p) => p.status === 'confirmed').length,
          refused: Object.fromEntries(byCode),
          pending: pending.length,
          payouts: payouts.map((p) => ({
            n: p.n,
            kind: p.kind,
            outputs: p.outputs.length,
            amount: p.amount,
            id: p.id,
            status: p.status,
            code: p.code,
            txid: p.txid,
          })),
        }),
      );
    } else {
      const lines = [
        '',
        `signed    ${signed.length} of ${payouts.length} (${signed.reduce((s, p) => s + p.outputs.length, 0)} customers, ${formatSats(sats.toString())}; ${signed.filter((p) => p.status === 'confirmed').length} confirmed)`,
      ];
      for (const [code, n] of byCode) {
        lines.push(
          code === 'LIMIT_EXCEEDED'
            ? `refused   ${n} LIMIT_EXCEEDED: expected. The automated tier is bounded: the hot wallet's rolling limit, summed by each signer from its own ledger (and by the coordinator at the door once it saw them signed). A stolen backend key gets no more.`
            : `refused   ${n} ${code}: not expected (${refused.find((p) => p.code === code)?.message ?? ''})`,
        );
      }
      if (pending.length > 0) lines.push(`open      ${pending.length} still on their way after the wait`);
      ctx.io.out(`${lines.join('\n')}\n`);
    }
    return unexpected.length === 0 && pending.length === 0 ? 0 : 1;
  },
};

function describe(p: Payout): string {
  const what =
    p.kind === 'batch'
      ? `batch of ${p.outputs.length}, ${formatSats(p.amount)}`
      : `${formatSats(p.amount)} to ${p.outputs[0]?.to}`;
  const id = p.id === null ? '(not stored)' : p.id.slice(0, 16);
  const tail =
    p.code !== null && !SIGNED.has(p.status) ? ` ${p.code}` : p.txid !== null ? ` txid ${p.txid}` : '';
  return `#${String(p.n).padStart(3)} ${id}  ${p.status.padEnd(9)} ${what}${tail}`;
}

/** A fresh regtest P2WPKH address (a random program: a customer's, in no address book). */
function freshAddress(): string {
  const address = scriptToAddress(new Uint8Array([0x00, 0x14, ...randomBytes(20)]), 'regtest');
  if (address === undefined) throw new Error('BUG: a P2WPKH script has no regtest address');
  return address;
}

/** 0.001 to 0.005 BTC, in satoshi: customers' withdrawals under the automated rule's maximum. */
function customerAmount(): bigint {
  return 100_000n + BigInt(randomBytes(4).readUInt32BE(0) % 400_000);
}

function parseRate(text: string | undefined): number {
  if (text === undefined) return 2;
  const r = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || !Number.isFinite(r) || r < 0.1 || r > 20) {
    throw new UsageError('--rate is withdrawals per second, 0.1 to 20');
  }
  return r;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
