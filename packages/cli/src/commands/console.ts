/**
 * `custos console verify <url>` (issue 10): is the console this coordinator
 * serves the released one? Fetches the page at `/` and every file of the
 * release manifest, and compares each one's sha256 with the manifest this
 * CLI carries: the one built from its own sources, which the build makes
 * byte for byte reproducible (packages/web/build/build.ts), or a release's
 * manifest.json given with --manifest. Anything the served page or the
 * served manifest names that the release does not is an extra file.
 *
 * A coordinator can serve a different console to different people, so this
 * proves what it served to this request only; the console's safety does not
 * rest on it (every change is a passkey signature the signers check), but a
 * console that changed is worth an alarm.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CustosError } from '@custos/core';
import { type Command, commonHelp } from '../command.js';
import { toJson, UsageError } from '../output.js';

interface Expected {
  readonly path: string;
  readonly sha256: string;
}

export interface ConsoleFinding {
  readonly path: string;
  readonly problem: 'differs' | 'missing' | 'extra';
  readonly detail: string;
}

export const consoleVerify: Command = {
  name: 'console verify',
  summary: 'check that a served web console is the released one, file by file',
  help: `custos console verify <url> [--manifest <file>] [--json]

Fetches the console a coordinator serves at <url> (its page at / and every
file of the release manifest) and compares each file's sha256 with the
manifest: by default the one built from this CLI's own sources (the build is
reproducible), or a release's manifest.json with --manifest. Exit 0 when
every file matches; exit 1 naming each file that differs, is missing, or is
served without being in the release:

  custos: the console at http://localhost:8080 is not the released one
    app.js: differs (sha256 3f1c… served, 9a0b… released)

Options:
  --manifest <file>       the release manifest to compare with (packages/web/dist/manifest.json)

Example:
  custos console verify http://localhost:8080
${commonHelp(['json', 'help'])}`,
  options: { manifest: { type: 'string' } },
  common: ['json', 'help'],
  positionals: 1,
  async run(ctx, args) {
    const base = baseUrl(args.positional(0, 'the console URL'));
    const manifestFile = args.str('manifest');
    const expected = await releaseFiles(
      manifestFile === undefined ? undefined : resolve(ctx.cwd, manifestFile),
    );
    const findings = await compare(base, expected);
    const ok = findings.length === 0;
    if (args.bool('json')) {
      ctx.io.out(toJson({ ok, url: base, files: expected.length, findings }));
      return ok ? 0 : 1;
    }
    if (ok) {
      ctx.io.out(`console at ${base} matches the release manifest: ${expected.length} files\n`);
      return 0;
    }
    ctx.io.err(`custos: the console at ${base} is not the released one\n`);
    for (const f of findings) ctx.io.err(`  ${f.path}: ${f.problem} (${f.detail})\n`);
    return 1;
  },
};

function baseUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`${JSON.stringify(text)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError('the URL must be http(s)');
  return u.origin;
}

async function releaseFiles(file: string | undefined): Promise<Expected[]> {
  if (file !== undefined) {
    let m: { v?: unknown; files?: unknown };
    try {
      m = JSON.parse(await readFile(file, 'utf8')) as typeof m;
    } catch {
      throw new CustosError('INVALID_VALUE', `${file} cannot be read as JSON`);
    }
    const files = m.files as Expected[] | undefined;
    if (m.v !== 1 || !Array.isArray(files) || files.some((f) => typeof f?.path !== 'string')) {
      throw new CustosError('INVALID_VALUE', `${file} is not a console release manifest`);
    }
    return files.map((f) => ({ path: f.path, sha256: f.sha256 }));
  }
  // Loaded on use: the build pulls esbuild, which no other command needs.
  const { buildConsole } = await import('@custos/web/build');
  const { manifest } = await buildConsole();
  return manifest.files.map((f) => ({ path: f.path, sha256: f.sha256 }));
}

async function fetchBytes(url: string): Promise<Uint8Array | null> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new CustosError('UNAVAILABLE', `cannot reach ${url}: ${(err as Error).message}`);
  }
  if (res.status === 404) return null;
  if (!res.ok) throw new CustosError('UNAVAILABLE', `${url} answered ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Each file of the release fetched and compared; then what the served page and manifest add. */
export async function compare(base: string, expected: readonly Expected[]): Promise<ConsoleFinding[]> {
  const findings: ConsoleFinding[] = [];
  const known = new Set(expected.map((f) => f.path));
  const index = expected.find((f) => f.path === 'index.html');
  const checks: [string, string, Expected | undefined][] = [
    ['/', 'index.html (at /)', index],
    ...expected.map((f): [string, string, Expected] => [`/${f.path}`, f.path, f]),
  ];
  let page: Uint8Array | null = null;
  for (const [path, name, want] of checks) {
    const got = await fetchBytes(`${base}${path}`);
    if (path === '/') page = got;
    if (got === null) {
      findings.push({ path: name, problem: 'missing', detail: `${path} answered 404` });
      continue;
    }
    if (want === undefined) continue;
    const have = sha256(got);
    if (have !== want.sha256) {
      findings.push({
        path: name,
        problem: 'differs',
        detail: `sha256 ${have.slice(0, 12)}… served, ${want.sha256.slice(0, 12)}… released`,
      });
    }
  }
  const extras = new Set<string>();
  if (page !== null) {
    const html = new TextDecoder().decode(page);
    for (const m of html.matchAll(/\b(?:src|href)\s*=\s*["']?([^"'\s>]+)/gi)) {
      const ref = m[1] as string;
      if (ref.startsWith('#')) continue;
      const u = new URL(ref, `${base}/`);
      const path = u.origin === base ? u.pathname.replace(/^\//, '') : u.href;
      if (!known.has(path)) extras.add(path);
    }
    if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html)) extras.add('(an inline <script> in the page)');
  }
  const servedManifest = await fetchBytes(`${base}/manifest.json`);
  if (servedManifest !== null) {
    try {
      const m = JSON.parse(new TextDecoder().decode(servedManifest)) as { files?: { path?: unknown }[] };
      for (const f of m.files ?? []) {
        if (typeof f.path === 'string' && !known.has(f.path)) extras.add(f.path);
      }
    } catch {
      findings.push({ path: 'manifest.json', problem: 'differs', detail: 'the served manifest is not JSON' });
    }
  }
  for (const path of extras) {
    findings.push({ path, problem: 'extra', detail: 'served, not in the release manifest' });
  }
  return findings;
}
