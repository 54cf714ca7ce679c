/**
 * The approver console's files, served at `/` (issue 10). The coordinator is
 * trusted for availability only, and so is what it serves: the console
 * verifies governance, signatures and transactions in the browser, and every
 * change is a passkey signature the signers check again. What the headers
 * here add is defence against injection into an honest deployment (THREATS:
 * a script slipped in by an XSS or a hostile proxy), and a console whose
 * files can be compared with the release manifest (`custos console verify`).
 *
 * The files are read once, at start, from a directory that `npm run build -w
 * @custos/web` wrote; each must match the manifest's sha256 or the coordinator
 * does not start with it. The Content-Security-Policy is derived from the
 * manifest: `script-src` lists the SRI hashes of its scripts and nothing else
 * (CSP Level 3 hash-source, matched against the script's integrity
 * metadata). 'self' would also let run any other script that the origin ever
 * serves (an error page, a future route echoing input); hash sources allow
 * exactly the released bytes. Styles are 'self' and carry SRI in the HTML.
 * Trusted Types are required and no policy may be created: the console never
 * writes HTML from strings. No cookie is ever set: nothing here is a session.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import type { FastifyInstance } from 'fastify';

export interface ConsoleManifestFile {
  readonly path: string;
  readonly sha256: string;
  readonly integrity: string;
  readonly kind: 'html' | 'script' | 'style';
}

export interface ConsoleAssets {
  /** Path (without the leading slash) to bytes and content type; index.html is also served at `/`. */
  readonly files: ReadonlyMap<string, { readonly bytes: Uint8Array; readonly type: string }>;
  /** manifest.json as the build wrote it, served as it is. */
  readonly manifest: Uint8Array;
  readonly csp: string;
}

const TYPES: Readonly<Record<ConsoleManifestFile['kind'], string>> = {
  html: 'text/html; charset=utf-8',
  script: 'text/javascript; charset=utf-8',
  style: 'text/css; charset=utf-8',
};

/** The console's CSP for a manifest (exported for the tests that compare it directive by directive). */
export function consoleCsp(files: readonly ConsoleManifestFile[]): string {
  const scripts = files.filter((f) => f.kind === 'script').map((f) => `'${f.integrity}'`);
  return [
    "default-src 'self'",
    `script-src ${scripts.length === 0 ? "'none'" : scripts.join(' ')}`,
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ');
}

/**
 * Reads a built console from `dir` (manifest.json and the files it lists).
 * Throws naming the file when one is missing, unlisted kinds appear, a path
 * leaves the directory, or a file's bytes do not match its sha256.
 */
export async function loadConsole(dir: string): Promise<ConsoleAssets> {
  const manifestBytes = new Uint8Array(await readFile(join(dir, 'manifest.json')));
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as {
    v?: unknown;
    files?: ConsoleManifestFile[];
  };
  if (manifest.v !== 1 || !Array.isArray(manifest.files)) {
    throw new Error(`${join(dir, 'manifest.json')} is not a console release manifest`);
  }
  const files = new Map<string, { bytes: Uint8Array; type: string }>();
  for (const f of manifest.files) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(f.path) || normalize(f.path) !== f.path || !(f.kind in TYPES)) {
      throw new Error(`console manifest: ${JSON.stringify(f.path)} is not a file the console serves`);
    }
    const bytes = new Uint8Array(await readFile(join(dir, f.path)));
    if (createHash('sha256').update(bytes).digest('hex') !== f.sha256) {
      throw new Error(`console file ${f.path} does not match its sha256 in the manifest`);
    }
    files.set(f.path, { bytes, type: TYPES[f.kind] });
  }
  if (!files.has('index.html')) throw new Error('console manifest lists no index.html');
  return { files, manifest: manifestBytes, csp: consoleCsp(manifest.files) };
}

/** Marks the console's routes, so the API's route list (and its OpenAPI document) leaves them out. */
export const CONSOLE_ROUTE = 'custos-console';

/** Registers GET / (index.html), GET /<file> for each manifest file and GET /manifest.json. */
export function registerConsole(app: FastifyInstance, assets: ConsoleAssets): void {
  const serve = (url: string, bytes: Uint8Array, type: string): void => {
    app.route({
      method: 'GET',
      url,
      config: { [CONSOLE_ROUTE]: true },
      handler: async (_req, reply) => {
        reply
          .header('content-type', type)
          .header('content-security-policy', assets.csp)
          .header('referrer-policy', 'no-referrer')
          .header('x-content-type-options', 'nosniff')
          .header('x-frame-options', 'DENY')
          .header('cross-origin-opener-policy', 'same-origin')
          .header('cross-origin-resource-policy', 'same-origin')
          .header('cache-control', 'no-cache');
        return reply.send(Buffer.from(bytes));
      },
    });
  };
  for (const [path, f] of assets.files) serve(`/${path}`, f.bytes, f.type);
  serve('/', assets.files.get('index.html')!.bytes, TYPES.html);
  serve('/manifest.json', assets.manifest, 'application/json; charset=utf-8');
}

/** True for a route registerConsole made (its onRoute options carry the marker). */
export function isConsoleRoute(r: { readonly config?: unknown }): boolean {
  return (r.config as Record<string, unknown> | undefined)?.[CONSOLE_ROUTE] === true;
}
