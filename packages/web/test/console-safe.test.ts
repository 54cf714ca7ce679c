/**
 * The approver console end to end for an EVM Safe (issue 10), in Debian's
 * Chromium with passkeys from the DevTools Protocol's virtual authenticator:
 * a Safe 1.4.1 (2 of 3) on a Hardhat chain owned by two real `custos signer
 * run` processes' EVM keys and a backup key; members enrol passkeys in the
 * browser and the admins add them (the test waits out a short delay); the
 * requester requests a USDT withdrawal in the browser (asset with its
 * decimals, destination from the address book); two approvers, each in its
 * own browser context, see the SafeTx decoded in the browser by the command
 * line's own review code (every field, the ERC-20 transfer inside the data;
 * before approval it is the one plain transfer the intent allows, built
 * there: the coordinator builds its own and assigns the nonce once the
 * intent is approved) and approve; both signers sign, the coordinator
 * executes execTransaction and the balances move by exactly the amount; the
 * requester's view then decodes the coordinator's proposal and computes its
 * safeTxHash in the browser, equal to the one the Safe executed.
 *
 * A screenshot of the Safe intent view is written to docs/screenshots.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildEntry,
  type Digest,
  type GovernanceState,
  intentDigest,
  type Millis,
  type SignedGovernanceEntry,
} from '@custos/core';
import { safeTxHash } from '@custos/evm';
import { loadConsole } from '@custos/server';
import { type EvmChain, startEvmChain, TOKEN_ABI } from '@custos/test-support/evm-chain';
import { ETH, type EvmWorld, fromJobSafeTx, makeEvmWorld } from '@custos/test-support/evm-world';
import { type Person, signBy } from '@custos/test-support/org';
import {
  initKeystore,
  type KeystoreInfo,
  type RunningSigner,
  runSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type Address, getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoordinator } from '../../server/src/app.js';
import { openDatabase } from '../../server/src/db/connect.js';
import { Store } from '../../server/src/db/repository.js';
import { initOrganization } from '../../server/src/governance-view.js';
import { createPipeline, type Pipeline } from '../../server/src/pipeline.js';
import { Client } from '../../server/test/api/support/client.js';
import { RecordingNotifier, TEST_LIMITS } from '../../server/test/api/support/harness.js';
import { storeAudit, storeGovernance } from '../../server/test/pipeline/support/harness.js';
import { writeConsole } from '../build/build.js';
import { axeViolations } from './support/axe.js';
import { consoleOrigin, launchChromium, passkeyPage } from './support/browser.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/screenshots');
const DELAY_MS = 15_000;
const AMOUNT = '25.5';
const BASE = 25_500_000n;

let dir: string;
let dist: string;
let chain: EvmChain;
let world: EvmWorld;
let browser: Browser;
let origin: string;
let url: string;
let current: () => Promise<GovernanceState>;
const contexts: BrowserContext[] = [];
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-web-safe-'));
  dist = join(dir, 'console');
  await writeConsole(dist);
  let keystores: KeystoreInfo[];
  [chain, ...keystores] = await Promise.all([
    startEvmChain(),
    initKeystore(dir, 'signer-1'),
    initKeystore(dir, 'signer-2'),
  ]);
  stops.push(() => chain.stop());
  const owners = keystores.map((k) => {
    const file = JSON.parse(readFileSync(k.path, 'utf8')) as { public: { evmAddress?: string } };
    if (file.public.evmAddress === undefined) throw new Error(`${k.path} has no EVM key`);
    return { id: k.id, identityKey: k.identityKey, evmAddress: getAddress(file.public.evmAddress) };
  });
  world = await makeEvmWorld(chain, owners, {
    fund: { eth: 10n * ETH, tokens: 1_000_000_000n },
    daily: { eth: 5n * ETH, usdt: 1_000_000_000n },
    delayMs: DELAY_MS,
  });

  const store = new Store(await openDatabase({ sqlitePath: join(dir, 'coordinator.db') }));
  await initOrganization(store, world.genesis, { now: Date.now });
  const governance = storeGovernance(store, world.orgId);
  const notifier = new RecordingNotifier();
  const pipeline: Pipeline = createPipeline(
    { store, governance, audit: storeAudit(store), notifier, clock: Date.now },
    {
      // No Bitcoin wallet: the Bitcoin node is never reached for a Safe.
      rpc: { url: 'http://127.0.0.1:9' },
      pollMs: 100,
      repairMs: 200,
      checkpointIntervalMs: 0,
      evm: { [String(chain.chainId)]: { rpcUrl: chain.rpcUrl, executorKey: chain.accounts[4]!.privateKey } },
    },
  );
  const coordinator = await createCoordinator({
    store,
    pipeline,
    notifier,
    clock: Date.now,
    limits: TEST_LIMITS,
    governance,
    console: await loadConsole(dist),
  });
  url = await coordinator.app.listen({ host: '127.0.0.1', port: 0 });
  pipeline.start();
  stops.push(async () => {
    await coordinator.close();
    await pipeline.stop();
  });
  current = () => coordinator.governance.current();

  const signers: RunningSigner[] = [];
  for (const k of keystores) {
    const config = join(dir, `${k.id}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        id: k.id,
        coordinatorUrl: url,
        genesis: world.orgId,
        keystore: `${k.id}.key`,
        database: `${k.id}.db`,
        chains: ['bitcoin:regtest'],
        waitMs: 200,
        evm: { [String(chain.chainId)]: { rpcUrl: chain.rpcUrl } },
      }),
    );
    signers.push(runSigner(config));
  }
  stops.push(async () => {
    for (const s of signers) s.child.kill('SIGTERM');
    await Promise.all(signers.map((s) => s.exited));
  });
  await Promise.all(signers.map((s) => waitForOutput(s, 'signer.started')));

  origin = consoleOrigin(url);
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Member {
  readonly id: string;
  readonly page: Page;
  readonly errors: string[];
}

const as = (p: Person) =>
  new Client(
    { baseUrl: url },
    { keyId: `member:${p.id}/${p.device.id}`, secretKey: p.device.secretKey },
    () => Date.now() as Millis,
  );

/** A member's own browser profile with a platform passkey authenticator (CTAP2, user verification). */
async function memberBrowser(id: string): Promise<Member> {
  const { context, page, errors } = await passkeyPage(browser, origin, world.orgId);
  contexts.push(context);
  return { id, page, errors };
}

/** Enrols a passkey in the browser; the admins (a quorum) add the device record it shows. */
async function enrolAndAdd(m: Member): Promise<void> {
  await m.page.goto(`${origin}/#/enrol`);
  await m.page.getByLabel('Member id').fill(m.id);
  await m.page.getByLabel('Device id').fill(`${m.id}-passkey`);
  await m.page.getByRole('button', { name: 'Create passkey' }).click();
  const device = JSON.parse(await m.page.getByTestId('device-record').innerText()) as Record<string, unknown>;
  expect(device).toMatchObject({ id: `${m.id}-passkey`, kind: 'webauthn', rpId: 'localhost', origin });
  const org = world.org;
  const signed: SignedGovernanceEntry = signBy(
    buildEntry(await current(), 'device.add', { member: m.id, device } as never, Date.now() as Millis),
    org.admins.slice(0, org.quorum),
  );
  const res = await as(org.admins[0]!).post('/v1/governance/proposals', signed);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect((res.body as { status: string }).status).toBe('applied');
}

async function signIn(m: Member, hash: string): Promise<void> {
  await m.page.goto(`${origin}/${hash}`);
  await m.page.getByRole('button', { name: 'Sign in with passkey' }).click();
  await m.page.getByText(/governance seq [0-9]+ verified/).waitFor();
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface View {
  status: string;
  statusCode: string | null;
  statusMessage: string | null;
  safeTx: { proposal: { nonce: string; safe: string }; executionTxHash: string | null } | null;
}

async function settled(id: Digest, want: readonly string[]): Promise<View> {
  return until(`intent ${id} ${want.join('/')}`, async () => {
    const v = (await as(world.org.requester).get(`/v1/intents/${id}`)).body as View;
    if (['refused', 'expired', 'rejected'].includes(v.status)) {
      throw new Error(`intent ${v.status}: ${v.statusCode} ${v.statusMessage}`);
    }
    return want.includes(v.status) ? v : undefined;
  });
}

const tokenOf = (a: Address) =>
  chain.publicClient.readContract({
    address: chain.token,
    abi: TOKEN_ABI,
    functionName: 'balanceOf',
    args: [a],
  }) as Promise<bigint>;

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

describe('the approver console for an EVM Safe in Chromium with passkeys', () => {
  it('a USDT withdrawal requested and approved in the browser, the SafeTx decoded there, is signed by both signer processes and executed: balances move by exactly the amount', async () => {
    const org = world.org;
    const requester = await memberBrowser(org.requester.id);
    const a1 = await memberBrowser(org.approvers[0]!.id);
    const a2 = await memberBrowser(org.approvers[1]!.id);
    for (const m of [requester, a1, a2]) await enrolAndAdd(m);
    // The signers learn governance with their next job and count the delay from then: a withdrawal
    // signed by the members' Ed25519 devices shows them the new passkeys.
    const warm = world.intent({ asset: 'eth', amount: 1n });
    expect((await as(org.requester).post('/v1/intents', warm)).status).toBe(201);
    const warmId = intentDigest(warm.intent);
    for (const [k, a] of world.approve(warm).entries()) {
      const res = await as(org.approvers[k]!).post(`/v1/intents/${warmId}/approvals`, a);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    await settled(warmId, ['confirmed']);
    const warmed = Date.now();
    await sleepUntil(warmed + DELAY_MS + 1_000);
    for (const m of [a1, a2]) await signIn(m, '#/approvals');
    const seen = Date.now();

    // The requester: a Safe wallet, its governed assets with their decimals, the address book.
    await signIn(requester, '#/request');
    await requester.page.getByLabel('Wallet').selectOption('eth-safe');
    await requester.page.getByLabel('Asset').selectOption('usdt');
    await requester.page.getByLabel('Destination (address book)').selectOption(world.payee);
    await requester.page.getByLabel('Amount (USDT)').fill(AMOUNT);
    expect(await requester.page.getByLabel('Asset').innerText()).toContain('6 decimals');
    expect(await axeViolations(requester.page)).toEqual([]);
    await requester.page.screenshot({ path: join(SHOTS, 'request-safe.png'), fullPage: true });
    const safe = world.safes['eth-safe'].address as Address;
    const before = { safe: await tokenOf(safe), payee: await tokenOf(world.payee) };
    await requester.page.getByRole('button', { name: 'Sign request with passkey' }).click();
    await requester.page.waitForURL(/#\/intent\/[0-9a-f]{64}$/);
    const id = requester.page.url().split('/').at(-1)! as Digest;
    await requester.page.getByTestId('status').waitFor();
    expect(await requester.page.getByTestId('status').innerText()).toBe('pending');
    // Before the coordinator builds it, the one plain transfer the intent allows, built in the browser.
    expect(await requester.page.getByTestId('safe-tx').innerText()).toContain(
      '(assigned when the coordinator builds it)',
    );

    // Two approvers in their own browsers: the SafeTx proposed by the coordinator, decoded and hashed there.
    await sleepUntil(seen + DELAY_MS + 1_000);
    const amountText = `${AMOUNT} USDT (${BASE} base units)`;
    for (const [n, m] of [a1, a2].entries()) {
      await m.page.reload();
      await signIn(m, '#/approvals');
      const link = m.page.getByRole('link', { name: amountText });
      await link.waitFor();
      await link.click();
      await m.page.getByText("Requester's signature and transaction verified in this browser.").waitFor();
      const table = m.page.getByTestId('safe-tx');
      const text = await table.innerText();
      // Every field, decoded: the token contract called with transfer(payee, 25.5 USDT), no ETH, CALL, no refunds.
      for (const name of [
        'safe',
        'chainId',
        'to',
        'value',
        'data',
        'operation',
        'safeTxGas',
        'baseGas',
        'gasPrice',
        'gasToken',
        'refundReceiver',
        'nonce',
        'safeTxHash',
      ]) {
        expect(await table.getByRole('rowheader', { name, exact: true }).count()).toBe(1);
      }
      expect(text).toContain(getAddress(chain.token));
      expect(text).toContain('token USDT (usdt)');
      expect(text).toContain(`transfer(${getAddress(world.payee)}, ${amountText})`);
      expect(text).toContain('CALL');
      expect(text).not.toContain('DELEGATECALL');
      expect(await m.page.locator('ul.warn').count()).toBe(0);
      // The coordinator builds the SafeTx once the intent is approved: until then the browser shows the one
      // plain transfer the intent allows, its nonce (and so its hash) still to be assigned.
      expect(await m.page.getByTestId('safe-tx-hash').innerText()).toBe(
        '(computed once the nonce is assigned)',
      );
      if (n === 0) expect(await axeViolations(m.page)).toEqual([]);
      await m.page.getByRole('button', { name: 'Approve with passkey' }).click();
      await m.page.getByRole('status').waitFor();
      expect(await m.page.getByRole('status').innerText()).toMatch(
        /^Approved: the intent is now (pending|approved|signing|broadcast|confirmed)/,
      );
    }

    const done = await settled(id, ['confirmed']);
    expect(done.safeTx?.executionTxHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await tokenOf(safe)).toBe(before.safe - BASE);
    expect(await tokenOf(world.payee)).toBe(before.payee + BASE);

    // The requester's view: confirmed, the coordinator's proposal decoded in the browser, its safeTxHash
    // computed there (the one the signers signed and the Safe executed), and the execution it sent.
    await requester.page.reload();
    await signIn(requester, `#/intent/${id}`);
    await requester.page.getByTestId('status').waitFor();
    expect(await requester.page.getByTestId('status').innerText()).toBe('confirmed');
    await requester.page
      .getByText("Requester's signature and transaction verified in this browser.")
      .waitFor();
    const proposal = done.safeTx!.proposal;
    const table = requester.page.getByTestId('safe-tx');
    const text = await table.innerText();
    expect(text).toContain(`transfer(${getAddress(world.payee)}, ${amountText})`);
    expect(text).toContain(done.safeTx!.executionTxHash!);
    expect(text).not.toContain('(assigned when the coordinator builds it)');
    expect(await requester.page.locator('ul.warn').count()).toBe(0);
    expect(await requester.page.getByTestId('safe-tx-hash').innerText()).toBe(
      safeTxHash(proposal.safe as Address, chain.chainId, fromJobSafeTx(proposal as never)),
    );
    await requester.page.screenshot({ path: join(SHOTS, 'intent-safe.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);

    for (const m of [requester, a1, a2]) expect(m.errors).toEqual([]);
  }, 420_000);
});
