/**
 * Governance proposals in the approver console (issue 10), in Debian's
 * Chromium with passkeys from the DevTools Protocol's virtual authenticator:
 * the admins enrol passkeys, one proposes an address-book entry in the
 * browser, the other sees it as a diff against the state verified in their
 * browser, with the delay it will wait, and co-signs it with a passkey. The
 * admins' webhook is a real HTTP receiver on 127.0.0.1, configured as an
 * admin's out-of-band channel (docs/api.md "Webhooks").
 *
 * Then a hostile console has an admin's passkey propose an attacker's
 * address: the webhook hears of it with the change in full, and withdrawing
 * to it is refused.
 *
 * The proposals view's screenshot is written to docs/screenshots.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Digest, type GovernanceEntry, governanceDigest } from '@custos/core';
import { type AdminWebhook, type Delivery, startAdminWebhook } from '@custos/test-support/admin-webhook';
import { type Deployment, startDeployment, testAddress } from '@custos/test-support/deployment';
import Database from 'better-sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConsole } from '../build/build.js';
import { axeViolations } from './support/axe.js';
import { consoleOrigin, launchChromium, passkeyPage } from './support/browser.js';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/screenshots');
const DELAY_MS = 10_000;
const SECRET = 'an admin webhook test secret';

let dist: string;
let w: Deployment;
let browser: Browser;
let origin: string;
let hook: AdminWebhook;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  dist = mkdtempSync(join(tmpdir(), 'custos-web-gov-'));
  await writeConsole(dist);
  hook = await startAdminWebhook(SECRET);
  const url = hook.url;
  w = await startDeployment({
    consoleDir: dist,
    delay: `${DELAY_MS / 1000}s`,
    webhooks: [
      { url, secret: SECRET, events: ['governance.proposed', 'governance.applied', 'alert', 'frozen'] },
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

async function memberBrowser(id: string): Promise<Member> {
  const { context, page, errors } = await passkeyPage(browser, origin, w.genesis);
  contexts.push(context);
  await page.goto(`${origin}/#/enrol`);
  await page.getByLabel('Member id').fill(id);
  await page.getByLabel('Device id').fill(`${id}-passkey`);
  await page.getByRole('button', { name: 'Create passkey' }).click();
  const device = JSON.parse(await page.getByTestId('device-record').innerText()) as Record<string, unknown>;
  // admin-1 proposes the device with its Ed25519 laptop key, admin-2 co-signs: applied, active after the delay.
  const proposed = await w.cli([
    'governance',
    'propose',
    'device.add',
    '--as',
    'admin-1',
    '--body',
    JSON.stringify({ member: id, device }),
    '--yes',
    '--json',
  ]);
  expect(proposed.code, proposed.stderr).toBe(0);
  const out = proposed.stdout;
  const json = JSON.parse(out.slice(out.startsWith('{\n') ? 0 : out.lastIndexOf('\n{\n') + 1)) as {
    id?: string;
    digest: string;
  };
  await w.ok(['governance', 'approve', json.id ?? json.digest, '--as', 'admin-2', '--yes']);
  return { id, page, errors };
}

async function signIn(m: Member, hash: string): Promise<void> {
  await m.page.goto(`${origin}/${hash}`);
  await m.page.reload();
  await m.page.getByRole('button', { name: 'Sign in with passkey' }).click();
  const signedIn = m.page.getByText(/governance seq [0-9]+ verified/);
  await signedIn.or(m.page.getByRole('alert')).first().waitFor();
  if (!(await signedIn.isVisible())) throw new Error(await m.page.getByRole('alert').innerText());
}

function db<T>(f: (d: Database.Database) => T): T {
  const d = new Database(w.database, { readonly: true });
  try {
    return f(d);
  } finally {
    d.close();
  }
}

function delivered(event: string, id: string): Promise<Delivery> {
  return hook.waitFor((x) => x.event === event && x.data.id === id, `${event} for ${id}`);
}

let admin1: Member;
let admin2: Member;
/** When admin-2's console first saw governance: it trusts admin-1's passkey signatures a delay later. */
let admin2Seen = 0;

describe('governance proposals in the console', () => {
  it("an admin proposes an address in the browser; the other sees the change as a diff with its delay and co-signs with a passkey; the admins' webhook hears both", async () => {
    admin1 = await memberBrowser('admin-1');
    admin2 = await memberBrowser('admin-2');
    // The requester's command line sees the new passkeys now and trusts their signatures a delay later,
    // counted on its own clock as every verifier does (it requests in the second test).
    await w.ok(['governance', 'show', '--as', 'requester-1', '--json']);
    await new Promise((r) => setTimeout(r, DELAY_MS + 1_000));

    const treasury = testAddress('console treasury');
    await signIn(admin1, '#/proposals');
    await admin1.page.getByText('No open proposal.').waitFor();
    await admin1.page.getByLabel('Entry id').fill('treasury');
    await admin1.page.getByLabel('Label').fill('Treasury');
    await admin1.page.getByLabel('Address').fill(treasury);
    await admin1.page.getByRole('button', { name: 'Propose with passkey' }).click();
    await expect
      .poll(() => admin1.page.getByRole('status').innerText())
      .toMatch(/^Proposed seq [0-9]+: 1 of 2/);
    const card1 = admin1.page.getByTestId('proposal');
    await card1.waitFor();
    // The proposer has signed: no co-sign button for it.
    expect(await admin1.page.getByRole('button', { name: /^Co-sign/ }).count()).toBe(0);

    admin2Seen = Date.now();
    await signIn(admin2, '#/proposals');
    const card = admin2.page.getByTestId('proposal');
    await card.waitFor();
    expect(await card.getByRole('heading').innerText()).toMatch(/^seq [0-9]+: address\.add$/);
    expect(await card.getByTestId('effect').innerText()).toMatch(
      /^widens: the destination is usable after the delay/,
    );
    expect(await card.getByTestId('delay').innerText()).toBe('10 s');
    const diff = await card.getByTestId('diff').innerText();
    expect(diff).toContain(`+   "address": "${treasury}"`);
    expect(diff).toContain('+   "label": "Treasury"');
    expect(diff).not.toMatch(/^- /m);
    expect(await card.innerText()).toContain('1 of 2: admin-1/admin-1-passkey');
    await admin2.page.screenshot({ path: join(SHOTS, 'proposals.png'), fullPage: true });
    expect(await axeViolations(admin2.page)).toEqual([]);
    await card.getByRole('button', { name: /^Co-sign seq [0-9]+ with passkey$/ }).click();
    await expect
      .poll(() => admin2.page.getByRole('status').innerText())
      .toMatch(/^Co-signed: seq [0-9]+ is applied\.$/);

    // Applied by the two passkeys; the coordinator audited each as that passkey device.
    const audit = db(
      (d) =>
        d
          .prepare(
            "SELECT event, actor, digest FROM audit_log WHERE event IN ('governance.proposed', 'governance.applied') ORDER BY rowid",
          )
          .all() as { event: string; actor: string; digest: string }[],
    );
    const proposal = audit.find(
      (a) => a.event === 'governance.proposed' && a.actor === 'member:admin-1/admin-1-passkey',
    );
    expect(proposal).toBeDefined();
    expect(audit).toContainEqual({
      event: 'governance.applied',
      actor: 'member:admin-2/admin-2-passkey',
      digest: proposal!.digest,
    });
    // Out of band, signed: the change in full, what it widens, the delay it waits.
    const heard = await delivered('governance.proposed', proposal!.digest);
    expect(heard.verified).toBe(true);
    expect(heard.data).toMatchObject({
      kind: 'address.add',
      by: 'member:admin-1/admin-1-passkey',
      effect: 'widens',
      delayMs: DELAY_MS,
      body: { id: 'treasury', address: treasury, label: 'Treasury' },
      signatures: { have: 1, need: 2 },
    });
    expect((await delivered('governance.applied', proposal!.digest)).data).toMatchObject({
      by: 'member:admin-2/admin-2-passkey',
      bindsAt: expect.any(Number),
    });
    for (const m of [admin1, admin2]) expect(m.errors).toEqual([]);
  }, 300_000);

  it("THREATS 18: a hostile console has an admin's passkey propose an attacker's address in the browser: the admins' webhook hears of it with the change, the other admin's console shows it, and a withdrawal to it is refused DESTINATION_NOT_ALLOWED, nothing signed, audited", async () => {
    const attacker = testAddress('console governance attacker');
    const head = db(
      (d) =>
        d.prepare('SELECT seq, digest FROM governance ORDER BY seq DESC LIMIT 1').get() as {
          seq: number;
          digest: string;
        },
    );
    const entry = {
      v: 1,
      org: w.genesis,
      seq: Number(head.seq) + 1,
      prev: head.digest,
      kind: 'address.add',
      body: { id: 'cold-storage-2', chain: 'bitcoin:regtest', address: attacker, label: 'Cold storage' },
      proposedAt: Date.now(),
    } as GovernanceEntry;
    const id = governanceDigest(entry) as Digest;
    // The injected script: the passkey signs the attacker's entry while the page shows whatever it likes.
    const answer = (await admin1.page.evaluate(
      `(async ({ entry, digest }) => {
        const device = JSON.parse(localStorage.getItem('custos.devices'))[0];
        const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
        const hex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
        const url = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
        const cred = await navigator.credentials.get({ publicKey: { challenge: hex(digest),
          allowCredentials: [{ type: 'public-key', id: b64(device.passkey.credentialId) }], userVerification: 'required' } });
        const signature = { kind: 'webauthn', authenticatorData: url(cred.response.authenticatorData),
          clientDataJSON: url(cred.response.clientDataJSON), signature: url(cred.response.signature) };
        const res = await fetch('/v1/governance/proposals', { method: 'POST',
          body: JSON.stringify({ entry, signatures: [{ member: device.member, device: device.device, signature }] }),
          headers: { 'content-type': 'application/json', 'custos-auth': 'signed-object' } });
        return { status: res.status, body: await res.json() };
      })(${JSON.stringify({ entry, digest: id })})`,
    )) as { status: number; body: { status: string; have: number; need: number } };
    expect(answer).toMatchObject({ status: 201, body: { status: 'open', have: 1, need: 2 } });

    // The admins' webhook, a channel the console does not control, hears of it with the address in full.
    const heard = await delivered('governance.proposed', id);
    expect(heard.verified).toBe(true);
    expect(heard.data).toMatchObject({
      kind: 'address.add',
      by: 'member:admin-1/admin-1-passkey',
      effect: 'widens',
      delayMs: DELAY_MS,
      body: { address: attacker, label: 'Cold storage' },
      signatures: { have: 1, need: 2 },
    });
    // A withdrawal to it is refused: not in the address book until a quorum applies it and its delay passes.
    const request = await w.cli([
      'request',
      '--as',
      'requester-1',
      '--wallet',
      'btc-main',
      '--to',
      attacker,
      '--amount',
      '100000',
      '--memo',
      `to the proposed address ${randomBytes(4).toString('hex')}`,
    ]);
    expect(request.code).not.toBe(0);
    expect(request.stderr).toContain('DESTINATION_NOT_ALLOWED');
    const after = db((d) => ({
      intents: (
        d.prepare('SELECT count(*) AS n FROM intents WHERE destination = ?').get(attacker) as { n: number }
      ).n,
      jobs: (d.prepare('SELECT count(*) AS n FROM signer_jobs').get() as { n: number }).n,
      refused: d.prepare("SELECT actor FROM audit_log WHERE event = 'intent.refused'").all() as {
        actor: string;
      }[],
      proposed: d
        .prepare("SELECT actor FROM audit_log WHERE event = 'governance.proposed' AND digest = ?")
        .all(id) as { actor: string }[],
    }));
    expect(after.intents).toBe(0);
    expect(after.jobs).toBe(0);
    expect(after.refused).toContainEqual({ actor: 'member:requester-1/requester-1-laptop' });
    expect(after.proposed).toEqual([{ actor: 'member:admin-1/admin-1-passkey' }]);

    // The other admin's console shows the attacker's address as the added line, verified against the entry's digest.
    // It counts the delay of admin-1's passkey from when it first saw it (as every signer does), so it
    // verifies the treasury entry that passkey signed only once that delay has passed here too.
    await new Promise((r) => setTimeout(r, Math.max(0, admin2Seen + DELAY_MS + 1_000 - Date.now())));
    await signIn(admin2, '#/proposals');
    const card = admin2.page.getByTestId('proposal');
    await card.waitFor();
    expect(await card.getByTestId('diff').innerText()).toContain(`+   "address": "${attacker}"`);
    expect(await card.getByTestId('delay').innerText()).toBe('10 s');
  }, 120_000);

  it('the alerts view lists the refusals and alerts of the audit log verified in the browser, the refused withdrawal among them', async () => {
    await admin2.page.getByRole('link', { name: 'Alerts' }).click();
    const status = admin2.page.getByRole('status').filter({ hasText: 'Alerts:' });
    await status.waitFor({ timeout: 60_000 });
    expect(await status.innerText()).toMatch(
      /^Alerts: [1-9][0-9]* found in [0-9]+ audit entries verified here$/,
    );
    const refusals = db(
      (d) =>
        d.prepare("SELECT subject FROM audit_log WHERE event = 'intent.refused'").all() as {
          subject: string;
        }[],
    );
    expect(refusals.length).toBeGreaterThan(0);
    const rows = admin2.page.getByRole('row').filter({ hasText: 'intent.refused' });
    expect(await rows.count()).toBe(refusals.length);
    expect(await rows.first().innerText()).toContain('member:requester-1/requester-1-laptop');
    expect(await rows.first().innerText()).toContain(refusals.at(-1)!.subject);
    await admin2.page.screenshot({ path: join(SHOTS, 'alerts.png'), fullPage: true });
    expect(await axeViolations(admin2.page)).toEqual([]);
    expect(admin2.errors).toEqual([]);
  }, 120_000);
});
