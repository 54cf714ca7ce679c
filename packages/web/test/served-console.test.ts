/**
 * The coordinator serves the console at `/` with the headers of issue 10,
 * checked through real HTTP and in Debian's Chromium: a CSP whose script-src
 * is exactly the release's scripts (hash sources), no inline script or style,
 * SRI on every tag, no referrer, no sniffing, no framing, no cookie. And
 * `custos console verify` passes on the served console and names each file
 * of a tampered one.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { custos } from '@custos/test-support/cli';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleBuild, integrityOf, manifestText, writeConsole } from '../build/build.js';
import { axeViolations } from './support/axe.js';
import { consoleOrigin, launchChromium } from './support/browser.js';
import { type Served, serveConsole } from './support/served.js';

let dist: string;
let built: ConsoleBuild;
let served: Served;
let browser: Browser | undefined;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  dist = mkdtempSync(join(tmpdir(), 'custos-web-dist-'));
  cleanup.push(() => rmSync(dist, { recursive: true, force: true }));
  built = await writeConsole(dist);
  served = await serveConsole(dist);
  cleanup.push(() => served.close());
});

afterAll(async () => {
  await browser?.close();
  for (const c of cleanup.reverse()) await c();
});

function directives(csp: string): Map<string, string> {
  return new Map(
    csp.split(';').map((d) => {
      const [name, ...values] = d.trim().split(/\s+/);
      return [name as string, values.join(' ')];
    }),
  );
}

describe('the console served by the coordinator', () => {
  it('answers / with the page and a CSP that allows the release scripts only', async () => {
    const res = await fetch(`${served.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const page = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(page).equals(Buffer.from(built.files.get('index.html')!))).toBe(true);
    const js = built.manifest.files.find((f) => f.path === 'app.js')!;
    const csp = directives(res.headers.get('content-security-policy') ?? '');
    expect(Object.fromEntries(csp)).toEqual({
      'default-src': "'self'",
      'script-src': `'${js.integrity}'`,
      'style-src': "'self'",
      'img-src': "'self'",
      'connect-src': "'self'",
      'object-src': "'none'",
      'frame-ancestors': "'none'",
      'base-uri': "'none'",
      'form-action': "'none'",
      'require-trusted-types-for': "'script'",
      'trusted-types': "'none'",
    });
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('serves each file of the manifest with its type and the same headers, and never a cookie', async () => {
    for (const [path, type] of [
      ['/index.html', 'text/html; charset=utf-8'],
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/app.css', 'text/css; charset=utf-8'],
      ['/manifest.json', 'application/json; charset=utf-8'],
    ] as const) {
      const res = await fetch(`${served.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toBe(type);
      expect(res.headers.get('content-security-policy'), path).toContain("frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(res.headers.get('set-cookie'), path).toBeNull();
      const body = new Uint8Array(await res.arrayBuffer());
      if (path !== '/manifest.json') {
        expect(integrityOf(body)).toBe(built.manifest.files.find((f) => `/${f.path}` === path)!.integrity);
      }
    }
    const api = await fetch(`${served.url}/v1/health`);
    expect(api.headers.get('set-cookie')).toBeNull();
    expect((await fetch(`${served.url}/other.js`)).status).toBe(404);
  });

  it('puts SRI and crossorigin on every script and stylesheet tag of the served page, and no inline script', async () => {
    const html = await (await fetch(`${served.url}/`)).text();
    const tags = [...html.matchAll(/<(script|link)\b([^>]*)>/g)];
    expect(tags.length).toBe(2);
    const byPath = new Map(built.manifest.files.map((f) => [`/${f.path}`, f]));
    for (const [, tag, attrs] of tags) {
      const src = /\b(?:src|href)="([^"]+)"/.exec(attrs as string)?.[1];
      expect(src, tag).toBeDefined();
      expect(attrs).toContain(`integrity="${byPath.get(src as string)?.integrity}"`);
      expect(attrs).toContain('crossorigin="anonymous"');
    }
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it('leaves the console out of the API: not in the route list nor in the OpenAPI document', async () => {
    const { coordinator } = served.server;
    expect(coordinator.app.hasRoute({ method: 'GET', url: '/' })).toBe(true);
    const files = ['/', '/index.html', '/app.js', '/app.css', '/manifest.json'];
    expect(coordinator.registered.filter((r) => files.includes(r.url))).toEqual([]);
    const doc = (await (await fetch(`${served.url}/v1/openapi.json`)).json()) as { paths: object };
    expect(Object.keys(doc.paths).filter((p) => files.includes(p))).toEqual([]);
  });

  it('runs in Chromium under its CSP and Trusted Types, and refuses a script injected inline', async () => {
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      // The browser asks for /favicon.ico on its own; the console has none and needs none.
      if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${consoleOrigin(served.url)}/`, { timeout: 30_000 });
    await page.getByRole('heading', { name: 'Approver console' }).waitFor({ timeout: 15_000 });
    expect(errors).toEqual([]);
    // What an XSS would do: an inline script. The CSP refuses to run it (and reports it).
    // Trusted Types refuse the string before the CSP gets to refuse the inline script.
    const injected = await page.addScriptTag({ content: 'window.injected = true;' }).then(
      () => 'ran',
      (e: Error) => e.message,
    );
    expect(injected).toMatch(/TrustedScript/);
    // No serious or critical accessibility violation on the start page, its enrolment page, and on a phone.
    expect(await axeViolations(page)).toEqual([]);
    await page.goto(`${consoleOrigin(served.url)}/#/enrol`);
    await page.getByRole('heading', { name: 'Enrol a passkey' }).waitFor();
    expect(await axeViolations(page)).toEqual([]);
    await page.setViewportSize({ width: 375, height: 740 });
    expect(await axeViolations(page)).toEqual([]);
    expect(await page.evaluate('window.injected === true')).toBe(false);
    expect(
      await page.evaluate(
        "(() => { try { document.createElement('script').src = '/x.js'; return 'set'; } catch (e) { return e.message; } })()",
      ),
    ).toMatch(/TrustedScriptURL/);
    // And a script that did run could not send what it read elsewhere: connect-src is the origin.
    await page.evaluate("fetch('http://127.0.0.2:9/').catch(() => 0)");
    await expect
      .poll(() => errors.some((e) => /Content Security Policy directive: "connect-src 'self'"/.test(e)), {
        timeout: 5_000,
      })
      .toBe(true);
    await page.close();
  });
});

describe('custos console verify', () => {
  it('passes on the served console, file by file, against the manifest built from these sources', async () => {
    const r = await custos(['console', 'verify', served.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`console at ${served.url} matches the release manifest: 3 files\n`);
    const j = await custos(['console', 'verify', served.url, '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, files: 3, findings: [] });
  });

  it('names each changed file and each extra one of a tampered console, exit 1', async () => {
    // A compromised host: its own app.js, an extra script, and an HTML page and
    // a manifest that agree with them (so the browser's SRI alone would pass).
    const evil = mkdtempSync(join(tmpdir(), 'custos-web-evil-'));
    cleanup.push(() => rmSync(evil, { recursive: true, force: true }));
    copyFileSync(join(dist, 'app.css'), join(evil, 'app.css'));
    const js = Buffer.concat([readFileSync(join(dist, 'app.js')), Buffer.from('\nwindow.evil=1;\n')]);
    writeFileSync(join(evil, 'app.js'), js);
    const extra = Buffer.from('window.more=1;\n');
    writeFileSync(join(evil, 'extra.js'), extra);
    const old = built.manifest.files.find((f) => f.path === 'app.js')!.integrity;
    const html = readFileSync(join(dist, 'index.html'), 'utf8')
      .replace(old, integrityOf(js))
      .replace(
        '</head>',
        `<script type="module" src="/extra.js" integrity="${integrityOf(extra)}" crossorigin="anonymous"></script>\n</head>`,
      );
    writeFileSync(join(evil, 'index.html'), html);
    const { createHash } = await import('node:crypto');
    const entry = (path: string, bytes: Uint8Array, kind: 'html' | 'script' | 'style') => ({
      path,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      integrity: integrityOf(bytes),
      bytes: bytes.length,
      kind,
    });
    writeFileSync(
      join(evil, 'manifest.json'),
      manifestText({
        v: 1,
        name: '@custos/web',
        files: [
          entry('index.html', Buffer.from(html), 'html'),
          entry('app.js', js, 'script'),
          entry('app.css', readFileSync(join(evil, 'app.css')), 'style'),
          entry('extra.js', extra, 'script'),
        ],
      }),
    );
    const hostile = await serveConsole(evil);
    cleanup.push(() => hostile.close());

    const r = await custos(['console', 'verify', hostile.url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`custos: the console at ${hostile.url} is not the released one\n`);
    expect(r.stderr).toMatch(/^ {2}index\.html \(at \/\): differs \(sha256 /m);
    expect(r.stderr).toMatch(/^ {2}index\.html: differs /m);
    expect(r.stderr).toMatch(/^ {2}app\.js: differs /m);
    expect(r.stderr).toMatch(/^ {2}extra\.js: extra \(served, not in the release manifest\)$/m);
    expect(r.stderr).not.toMatch(/app\.css/);
    const j = await custos(['console', 'verify', hostile.url, '--json']);
    expect(j.code).toBe(1);
    const findings = (JSON.parse(j.stdout) as { findings: { path: string; problem: string }[] }).findings;
    expect(findings.map((f) => `${f.path} ${f.problem}`).sort()).toEqual([
      'app.js differs',
      'extra.js extra',
      'index.html (at /) differs',
      'index.html differs',
    ]);

    // A release manifest given by file is what it compares with.
    const m = await custos(['console', 'verify', hostile.url, '--manifest', join(evil, 'manifest.json')]);
    expect(m.code).toBe(0);
  });

  it('says what is wrong with its command line (exit 2)', async () => {
    const r = await custos(['console', 'verify', 'not a url']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a URL');
  });
});
