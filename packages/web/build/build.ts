/**
 * The console's reproducible build (issue 10). esbuild bundles src/main.tsx
 * (with @custos/core and the chain packages' pure decoders, so the browser
 * verifies for itself) and src/app.css for the browser; the HTML is written
 * here, naming each file with its Subresource Integrity hash. Building twice
 * from the same sources gives the same bytes: no timestamps, no content-hashed
 * names that depend on absolute paths, no source maps, no legal comments, and
 * the file list sorted.
 *
 * The release manifest lists every file with its sha256 and its SRI string
 * (sha384, W3C Subresource Integrity §3.1). The coordinator derives its
 * Content-Security-Policy from it (script-src holds the scripts' hashes and
 * nothing else) and `custos console verify` compares a served console with
 * it, file by file.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const WEB_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Where `npm run build -w @custos/web` writes (and the coordinator serves from by default). */
export const DIST = join(WEB_ROOT, 'dist');
export const MANIFEST_FILE = 'manifest.json';

export interface ManifestFile {
  /** The path it is served at, without the leading slash ("index.html" is also served at /). */
  readonly path: string;
  readonly sha256: string;
  /** The SRI string, `sha384-<base64>`, as the HTML's integrity attributes and the CSP carry it. */
  readonly integrity: string;
  readonly bytes: number;
  readonly kind: 'html' | 'script' | 'style';
}

export interface ReleaseManifest {
  readonly v: 1;
  readonly name: '@custos/web';
  readonly files: readonly ManifestFile[];
}

export interface ConsoleBuild {
  /** Each file's bytes by path, the manifest's order. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly manifest: ReleaseManifest;
}

/** `sha384-<base64>` of the bytes (SRI's metadata form). */
export function integrityOf(bytes: Uint8Array): string {
  return `sha384-${createHash('sha384').update(bytes).digest('base64')}`;
}

function describe(path: string, bytes: Uint8Array, kind: ManifestFile['kind']): ManifestFile {
  return {
    path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    integrity: integrityOf(bytes),
    bytes: bytes.length,
    kind,
  };
}

/** Builds the console in memory. Deterministic: the same sources give the same bytes. */
export async function buildConsole(): Promise<ConsoleBuild> {
  const result = await build({
    absWorkingDir: WEB_ROOT,
    entryPoints: { app: 'src/main.tsx', style: 'src/app.css' },
    bundle: true,
    write: false,
    outdir: 'out',
    platform: 'browser',
    format: 'esm',
    target: ['es2022', 'chrome120', 'firefox120', 'safari17'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    charset: 'utf8',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    define: { 'process.env.NODE_ENV': '"production"' },
    // core and the Bitcoin decoders spell hex and base64 with Node's Buffer; the
    // console gets a small stand-in (src/node-buffer.ts) instead of a polyfill.
    inject: ['src/node-buffer.ts'],
    logLevel: 'silent',
  });
  const out = new Map<string, Uint8Array>();
  for (const f of result.outputFiles) {
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    out.set(name === 'style.css' ? 'app.css' : name, f.contents);
  }
  const js = out.get('app.js');
  const css = out.get('app.css');
  if (js === undefined || css === undefined) throw new Error('esbuild wrote no app.js or app.css');
  const scriptEntry = describe('app.js', js, 'script');
  const styleEntry = describe('app.css', css, 'style');
  const html = new TextEncoder().encode(indexHtml(scriptEntry, styleEntry));
  const files = new Map<string, Uint8Array>([
    ['index.html', html],
    ['app.js', js],
    ['app.css', css],
  ]);
  return {
    files,
    manifest: {
      v: 1,
      name: '@custos/web',
      files: [describe('index.html', html, 'html'), scriptEntry, styleEntry],
    },
  };
}

/**
 * The one HTML page: no inline script or style (the CSP forbids both), each
 * subresource with its integrity and `crossorigin` (SRI is checked on CORS
 * fetches; same-origin ones pass it without credentials).
 */
function indexHtml(script: ManifestFile, style: ManifestFile): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Custos console</title>
<link rel="stylesheet" href="/${style.path}" integrity="${style.integrity}" crossorigin="anonymous">
<script type="module" src="/${script.path}" integrity="${script.integrity}" crossorigin="anonymous"></script>
</head>
<body>
<noscript>The Custos console needs JavaScript; the custos command does everything it does.</noscript>
<div id="app"></div>
</body>
</html>
`;
}

/** The manifest as written to manifest.json: stable key order, one trailing newline. */
export function manifestText(m: ReleaseManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/** Builds and writes every file and manifest.json into `dir` (default packages/web/dist). */
export async function writeConsole(dir: string = DIST): Promise<ConsoleBuild> {
  const b = await buildConsole();
  await mkdir(dir, { recursive: true });
  for (const [path, bytes] of b.files) await writeFile(join(dir, path), bytes);
  await writeFile(join(dir, MANIFEST_FILE), manifestText(b.manifest));
  return b;
}

/** Reads a manifest.json (throws on a file that is not one). */
export async function readManifest(file: string): Promise<ReleaseManifest> {
  const m = JSON.parse(await readFile(file, 'utf8')) as ReleaseManifest;
  if (m?.v !== 1 || !Array.isArray(m.files)) throw new Error(`${file} is not a console release manifest`);
  return m;
}
