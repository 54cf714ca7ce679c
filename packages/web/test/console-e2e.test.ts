/**
 * The approver console end to end (issue 10), in Debian's Chromium with
 * passkeys from the DevTools Protocol's virtual authenticator: members enrol
 * passkeys in the browser, the admins add them through `custos governance`
 * (the test waits out a short delay), the requester requests in the browser,
 * two approvers approve in their own browser contexts, both signer
 * processes sign, and the regtest transaction is broadcast and mined. What
 * the browser showed was verified there: the requester's passkey signature
 * and, once built, the transaction decoded from the PSBT.
 *
 * Screenshots of each view are written to docs/screenshots.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBlock } from '@custos/bitcoin';
import { type Address, type Amount, type Digest, type Hex, type Intent, intentDigest } from '@custos/core';
import { type AdminWebhook, type Delivery, startAdminWebhook } from '@custos/test-support/admin-webhook';
import { eventually } from '@custos/test-support/cli';
import { type Deployment, startDeployment, testAddress } from '@custos/test-support/deployment';
import Database from 'better-sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConsole } from '../build/build.js';
import { axeViolations } from './support/axe.js';
import { consoleOrigin, launchChromium, passkeyPage } from './support/browser.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/screenshots');
const DELAY_MS = 20_000;

let dist: string;
let w: Deployment;
let browser: Browser;
let origin: string;
const contexts: BrowserContext[] = [];
/** The admins' own webhook (out of band): it hears of each hostile console's attempt. */
let hook: AdminWebhook;
const HOOK_SECRET = 'the admins webhook secret, e2e';
/** The requester's browser, signed in, kept for the hostile-console tests. */
let requester: Member;

beforeAll(async () => {
  dist = mkdtempSync(join(tmpdir(), 'custos-web-e2e-'));
  await writeConsole(dist);
  hook = await startAdminWebhook(HOOK_SECRET);
  w = await startDeployment({
    consoleDir: dist,
    delay: `${DELAY_MS / 1000}s`,
    webhooks: [
      { url: hook.url, secret: HOOK_SECRET, events: ['alert', 'intent.refused', 'governance.proposed'] },
    ],
  });
  origin = consoleOrigin(w.coordinatorUrl);
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await w?.stop();
  await hook?.close();
  rmSync(dist, { recursive: true, force: true });
});

interface Member {
  readonly id: string;
  readonly page: Page;
  readonly errors: string[];
}

/** A member's own browser profile with a platform passkey authenticator (CTAP2, user verification). */
async function memberBrowser(id: string): Promise<Member> {
  const { context, page, errors } = await passkeyPage(browser, origin, w.genesis);
  contexts.push(context);
  return { id, page, errors };
}

/** Enrols a passkey in the browser and returns the device record it shows for the admins. */
async function enrol(m: Member, shot?: string): Promise<Record<string, unknown>> {
  await m.page.goto(`${origin}/#/enrol`);
  await m.page.getByLabel('Member id').fill(m.id);
  await m.page.getByLabel('Device id').fill(`${m.id}-passkey`);
  await m.page.getByRole('button', { name: 'Create passkey' }).click();
  const record = JSON.parse(await m.page.getByTestId('device-record').innerText()) as Record<string, unknown>;
  expect(await m.page.getByTestId('fingerprint').innerText()).toMatch(/^([0-9a-f]{4} ){4}[0-9a-f]{4}$/);
  if (shot !== undefined) await m.page.screenshot({ path: join(SHOTS, shot), fullPage: true });
  return record;
}

/** admin-1 proposes device.add, admin-2 co-signs: applied, active after the delay. */
async function addDevice(member: string, device: Record<string, unknown>): Promise<void> {
  const body = JSON.stringify({ member, device });
  const proposed = await w.cli([
    'governance',
    'propose',
    'device.add',
    '--as',
    'admin-1',
    '--body',
    body,
    '--yes',
    '--json',
  ]);
  expect(proposed.code, proposed.stderr).toBe(0);
  // The change as described for the admin, then the answer as JSON.
  const out = proposed.stdout;
  const json = JSON.parse(out.slice(out.startsWith('{\n') ? 0 : out.lastIndexOf('\n{\n') + 1)) as {
    id?: string;
    digest: string;
  };
  const id = json.id ?? json.digest;
  const approved = await w.cli(['governance', 'approve', id, '--as', 'admin-2', '--yes']);
  expect(approved.code, approved.stderr).toBe(0);
}

async function signIn(m: Member, hash: string): Promise<void> {
  await m.page.goto(`${origin}/${hash}`);
  await m.page.getByRole('button', { name: 'Sign in with passkey' }).click();
  await m.page.getByText(/governance seq [0-9]+ verified/).waitFor();
}

describe('the approver console in Chromium with passkeys', () => {
  it('members enrol passkeys, admins add them, a request and two approvals in the browser are signed, broadcast and mined', async () => {
    requester = await memberBrowser('requester-1');
    const a1 = await memberBrowser('approver-1');
    const a2 = await memberBrowser('approver-2');
    await requester.page.screenshot({ path: join(SHOTS, 'start.png'), fullPage: true });
    const enrolled: [Member, Record<string, unknown>][] = [
      [requester, await enrol(requester)],
      [a1, await enrol(a1, 'enrol.png')],
      [a2, await enrol(a2)],
    ];
    for (const [m, r] of enrolled) {
      expect(r).toMatchObject({ id: `${m.id}-passkey`, kind: 'webauthn', rpId: 'localhost', origin });
      await addDevice(m.id, r);
    }
    const added = Date.now();
    // A device authorizes nothing before the governance delay (the one added last: a sign-in now is refused)...
    await a2.page.goto(`${origin}/#/approvals`);
    await a2.page.getByRole('button', { name: 'Sign in with passkey' }).click();
    await expect.poll(() => a2.page.getByRole('alert').innerText()).toMatch(/DEVICE_NOT_ACTIVE/);
    // ...and after it, they do. Each console counts a device's delay from when it first saw the
    // entry that added it, as the custos command does: the approvers' consoles see the requester's
    // passkey now, and trust its signature once the delay has passed here too.
    // The signers learn governance with their next job (and count the delay from then): a withdrawal
    // through the command line, with Ed25519 devices, shows them the new passkeys.
    const warm = await w.request('100000', 'the signers see the new passkeys');
    await w.ok(['approve', warm, '--as', 'approver-1', '--yes']);
    await w.ok(['approve', warm, '--as', 'approver-3', '--yes']);
    await eventually(
      async () =>
        ['broadcast', 'confirmed'].includes((await w.show<{ status: string }>(warm)).status)
          ? true
          : undefined,
      'the warm-up withdrawal to be broadcast',
      90_000,
    );
    // Mined, so its change is the wallet's coin for the browser's request.
    await w.node.mine(1);
    await eventually(
      async () => ((await w.show<{ status: string }>(warm)).status === 'confirmed' ? true : undefined),
      'the warm-up withdrawal to be confirmed',
      60_000,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, added + DELAY_MS + 1_000 - Date.now())));
    for (const m of [a1, a2]) await signIn(m, '#/approvals');
    const seen = Date.now();

    // The requester: the form lists the address book verified in the browser; the passkey signs the intent.
    await signIn(requester, '#/request');
    await requester.page.getByLabel('Destination (address book)').selectOption(w.cold);
    await requester.page.getByLabel('Amount (satoshi)').fill('150000');
    await requester.page.screenshot({ path: join(SHOTS, 'request.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);
    await requester.page.getByRole('button', { name: 'Sign request with passkey' }).click();
    await requester.page.waitForURL(/#\/intent\/[0-9a-f]{64}$/);
    const id = requester.page.url().split('/').at(-1)!;
    await requester.page.getByTestId('status').waitFor();
    expect(await requester.page.getByTestId('status').innerText()).toBe('pending');

    // What the coordinator stored is the intent the passkey signed, submitted as that passkey device.
    const db = new Database(w.database, { readonly: true });
    try {
      const row = db
        .prepare('SELECT device, amount, destination, body FROM intents WHERE id = ?')
        .get(id) as {
        device: string;
        amount: string;
        destination: string;
        body: string;
      };
      expect(row).toMatchObject({ device: 'requester-1-passkey', amount: '150000', destination: w.cold });
      expect(JSON.parse(row.body).signature.kind).toBe('webauthn');
      const created = db
        .prepare("SELECT actor FROM audit_log WHERE event = 'intent.created' AND subject = ?")
        .get(id);
      expect(created).toEqual({ actor: 'member:requester-1/requester-1-passkey' });
    } finally {
      db.close();
    }

    // Two approvers, each in its own browser: the pending list, the intent verified here, approve.
    await new Promise((r) => setTimeout(r, Math.max(0, seen + DELAY_MS + 1_000 - Date.now())));
    for (const [n, m] of [a1, a2].entries()) {
      await m.page.reload();
      await signIn(m, '#/approvals');
      const link = m.page.getByRole('link', { name: '0.00150000 BTC' });
      await link.waitFor();
      expect(await m.page.getByRole('row').filter({ has: link }).innerText()).toContain('signature verified');
      if (n === 0) await m.page.screenshot({ path: join(SHOTS, 'approvals.png'), fullPage: true });
      if (n === 0) expect(await axeViolations(m.page)).toEqual([]);
      await link.click();
      await m.page.getByText("Requester's signature and transaction verified in this browser.").waitFor();
      if (n === 0) await m.page.screenshot({ path: join(SHOTS, 'intent.png'), fullPage: true });
      if (n === 0) expect(await axeViolations(m.page)).toEqual([]);
      await m.page.getByRole('button', { name: 'Approve with passkey' }).click();
      await m.page.getByRole('status').waitFor();
      const said = await m.page.getByRole('status').innerText();
      if (!/^Approved: the intent is now (pending|approved|signing|broadcast)/.test(said)) {
        throw new Error(`${said} ${JSON.stringify(await w.show(id))}`);
      }
    }

    const broadcast = await eventually(
      async () => {
        const v = await w.show<{ status: string; txid: string | null; approvals: { approver: string }[] }>(
          id,
        );
        if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
        return ['broadcast', 'confirmed'].includes(v.status) ? v : undefined;
      },
      'the transaction to be broadcast',
      90_000,
    );
    expect(broadcast.approvals.map((a) => a.approver).sort()).toEqual(['approver-1', 'approver-2']);
    await w.node.mine(1);
    await eventually(
      async () => ((await w.show<{ status: string }>(id)).status === 'confirmed' ? true : undefined),
      'the transaction to be confirmed',
      60_000,
    );
    const rpc = w.node.rpc;
    const block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(await rpc.getBlockCount())));
    const tx = block.txs.find((t) => t.txid === broadcast.txid);
    expect(tx).toBeDefined();

    // The requester's view now shows the transaction decoded from the PSBT in the browser.
    await requester.page.reload();
    await signIn(requester, `#/intent/${id}`);
    await requester.page.getByTestId('status').waitFor();
    expect(await requester.page.getByTestId('status').innerText()).toBe('confirmed');
    const table = await requester.page.getByRole('table').innerText();
    expect(table).toContain(w.cold);
    expect(table).toContain('150,000 sat');
    expect(table).toMatch(/Fee \([0-9]+ vB\)/);
    await requester.page.screenshot({ path: join(SHOTS, 'intent-confirmed.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);

    // Governance and the audit log, verified in the browser (the same session: no new passkey touch).
    await requester.page.getByRole('link', { name: 'Governance' }).click();
    await requester.page.getByRole('heading', { name: 'Members and devices' }).waitFor();
    expect(await requester.page.getByRole('table').first().innerText()).toContain(
      'requester-1-passkey (passkey)',
    );
    await requester.page.screenshot({ path: join(SHOTS, 'governance.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);
    await requester.page.getByRole('link', { name: 'Audit' }).click();
    await requester.page.getByRole('status').filter({ hasText: 'Audit log' }).waitFor({ timeout: 60_000 });
    expect(await requester.page.getByRole('status').innerText()).toMatch(/^Audit log intact: [0-9]+ entries/);
    await requester.page.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);
    // And on a phone.
    await requester.page.setViewportSize({ width: 375, height: 800 });
    await requester.page.goto(`${origin}/#/intent/${id}`);
    await requester.page.getByTestId('status').waitFor();
    await requester.page.screenshot({ path: join(SHOTS, 'intent-phone.png'), fullPage: true });
    expect(await axeViolations(requester.page)).toEqual([]);

    for (const m of [requester, a1, a2]) expect(m.errors).toEqual([]);
  }, 420_000);

  /**
   * What a compromised host can do with the console's own origin: run any
   * script in the requester's page (here through the DevTools Protocol, as
   * an injected script would) and ask the requester's passkey to sign what
   * it likes while the page shows something else. The passkey signs; the
   * coordinator and the signers refuse whatever the policy does not allow.
   */
  const HOSTILE = `async ({ intent, digest, tamper }) => {
    const device = JSON.parse(localStorage.getItem('custos.devices'))[0];
    const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const hex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
    const url = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
    const pad = (s) => s + '='.repeat((4 - (s.length % 4)) % 4);
    const cred = await navigator.credentials.get({ publicKey: {
      challenge: hex(digest), allowCredentials: [{ type: 'public-key', id: b64(pad(device.passkey.credentialId)) }],
      userVerification: 'required' } });
    const signature = { kind: 'webauthn', authenticatorData: url(cred.response.authenticatorData),
      clientDataJSON: url(cred.response.clientDataJSON), signature: url(cred.response.signature) };
    const body = { intent: { ...intent, ...tamper }, signature };
    const res = await fetch('/v1/intents', { method: 'POST', body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'custos-auth': 'signed-object' } });
    return { status: res.status, body: await res.json() };
  }`;

  function attackIntent(to: string, amount: string): Intent {
    const now = Date.now();
    return {
      v: 1,
      org: w.genesis as Digest,
      wallet: 'btc-main',
      chain: 'bitcoin:regtest',
      asset: 'BTC',
      amount: amount as Amount,
      to: to as Address,
      requester: 'requester-1',
      device: 'requester-1-passkey',
      nonce: randomBytes(16).toString('hex') as Hex,
      createdAt: now,
      expiresAt: now + 3_600_000,
    };
  }

  function stored(id: string): { intents: number; refused: { actor: string; event: string }[] } {
    const db = new Database(w.database, { readonly: true });
    try {
      const intents = (db.prepare('SELECT count(*) AS n FROM intents WHERE id = ?').get(id) as { n: number })
        .n;
      const refused = db
        .prepare(
          "SELECT actor, event FROM audit_log WHERE event IN ('intent.refused', 'request.refused') AND (subject = ? OR digest = ?)",
        )
        .all(id, id) as { actor: string; event: string }[];
      return { intents, refused };
    } finally {
      db.close();
    }
  }

  it("THREATS 17: a hostile console has the requester's passkey sign a payment to an attacker's address: refused DESTINATION_NOT_ALLOWED, nothing stored or signed, audited, the admins' webhook told", async () => {
    const attacker = testAddress('console attacker');
    const intent = attackIntent(attacker, '150000');
    const id = intentDigest(intent);
    const answer = (await requester.page.evaluate(
      `(${HOSTILE})(${JSON.stringify({ intent, digest: id, tamper: {} })})`,
    )) as {
      status: number;
      body: { error: { code: string } };
    };
    expect(answer.status).toBe(422);
    expect(answer.body.error.code).toBe('DESTINATION_NOT_ALLOWED');
    const after = stored(id);
    expect(after.intents).toBe(0);
    expect(after.refused).toContainEqual({
      actor: 'member:requester-1/requester-1-passkey',
      event: 'intent.refused',
    });
    // Out of band: the admins' webhook hears of the attempt, verified as Standard Webhooks.
    const told = await hook.waitFor(
      (d) => d.event === 'intent.refused' && d.data.id === id,
      'the refused payment to the attacker',
    );
    expect(told).toMatchObject({
      verified: true,
      data: { code: 'DESTINATION_NOT_ALLOWED', by: 'member:requester-1/requester-1-passkey' },
    });
  });

  it("THREATS 6: a hostile console rewrites the destination and the amount after the passkey signed the request shown: refused BAD_SIGNATURE, nothing stored or signed, audited, a critical alert on the admins' webhook", async () => {
    const shown = attackIntent(w.cold, '150000');
    const attacker = testAddress('console attacker');
    for (const tamper of [{ to: attacker }, { amount: '90000000' }]) {
      const sent = { ...shown, ...tamper, nonce: randomBytes(16).toString('hex') } as Intent;
      const signedFor: Intent = { ...shown, nonce: sent.nonce };
      const answer = (await requester.page.evaluate(
        `(${HOSTILE})(${JSON.stringify({ intent: signedFor, digest: intentDigest(signedFor), tamper })})`,
      )) as { status: number; body: { error: { code: string } } };
      expect(answer.status).toBe(401);
      expect(answer.body.error.code).toBe('BAD_SIGNATURE');
      const id = intentDigest(sent);
      expect(stored(id).intents).toBe(0);
    }
    const db = new Database(w.database, { readonly: true });
    try {
      const refused = db
        .prepare(
          "SELECT count(*) AS n FROM audit_log WHERE event = 'request.refused' AND actor = ? AND subject = ?",
        )
        .get('member:requester-1/requester-1-passkey', 'BAD_SIGNATURE POST /v1/intents') as { n: number };
      expect(refused.n).toBe(2);
      const signedTo = db
        .prepare('SELECT count(*) AS n FROM intents WHERE destination = ?')
        .get(attacker) as { n: number };
      expect(signedTo.n).toBe(0);
    } finally {
      db.close();
    }
    // Out of band: each rewritten request is a critical alert on the admins' webhook.
    const forged = (d: Delivery) => d.event === 'alert' && d.data.code === 'BAD_SIGNATURE';
    await hook.waitFor((d) => forged(d) && hook.deliveries.filter(forged).length >= 2, 'two alerts');
    const alerts = hook.deliveries.filter(forged);
    expect(alerts).toHaveLength(2);
    for (const a of alerts) {
      expect(a).toMatchObject({
        verified: true,
        data: { severity: 'critical', subject: 'member:requester-1/requester-1-passkey' },
      });
    }
  });
});
