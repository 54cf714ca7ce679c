/**
 * The console's build is reproducible (issue 10): two builds from the same
 * sources give the same bytes, so anyone can rebuild a release and compare
 * its manifest, and `custos console verify` can compare a served console
 * with a manifest built here.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildConsole, integrityOf, readManifest, writeConsole } from '../build/build.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'custos-web-build-'));
  dirs.push(d);
  return d;
}

describe('the console build', () => {
  it('writes byte-identical files when run twice', async () => {
    const [a, b] = [tmp(), tmp()];
    await writeConsole(a);
    await writeConsole(b);
    const names = readdirSync(a).sort();
    expect(names).toEqual(['app.css', 'app.js', 'index.html', 'manifest.json']);
    expect(readdirSync(b).sort()).toEqual(names);
    for (const n of names) expect(readFileSync(join(b, n)).equals(readFileSync(join(a, n))), n).toBe(true);
  });

  it('lists each file in the manifest with its sha256 and SRI sha384, as written', async () => {
    const dir = tmp();
    const built = await writeConsole(dir);
    const manifest = await readManifest(join(dir, 'manifest.json'));
    expect(manifest).toEqual(built.manifest);
    expect(manifest.files.map((f) => f.path)).toEqual(['index.html', 'app.js', 'app.css']);
    for (const f of manifest.files) {
      const bytes = readFileSync(join(dir, f.path));
      expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(f.integrity).toBe(`sha384-${createHash('sha384').update(bytes).digest('base64')}`);
      expect(f.bytes).toBe(bytes.length);
    }
  });

  it('names every script and style in the page with its integrity and crossorigin, and nothing inline', async () => {
    const { files, manifest } = await buildConsole();
    const html = new TextDecoder().decode(files.get('index.html'));
    const js = manifest.files.find((f) => f.path === 'app.js')!;
    const css = manifest.files.find((f) => f.path === 'app.css')!;
    expect(html).toContain(
      `<script type="module" src="/app.js" integrity="${js.integrity}" crossorigin="anonymous"></script>`,
    );
    expect(html).toContain(
      `<link rel="stylesheet" href="/app.css" integrity="${css.integrity}" crossorigin="anonymous">`,
    );
    expect(integrityOf(files.get('app.js')!)).toBe(js.integrity);
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it('bundles core and the Bitcoin decoders for the browser without a Node module', async () => {
    const js = new TextDecoder().decode((await buildConsole()).files.get('app.js'));
    // esbuild with platform 'browser' fails the build on any node: import; the bundle has none to load.
    expect(js).not.toMatch(/\bimport\s*\(?\s*["']node:/);
    expect(js).not.toMatch(/\brequire\s*\(/);
  });
});
