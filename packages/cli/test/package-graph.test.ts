import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * What each process loads at start (issue 11, thin shells): the static import
 * graph from an entry module, through the workspace packages, read from the
 * sources. Type-only imports and `await import(...)` (loaded when a command
 * runs) are not followed. Third-party packages are recorded, not entered.
 */
const PACKAGES = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function packageEntry(specifier: string): string | undefined {
  const m = /^@custos\/([a-z-]+)(\/.*)?$/.exec(specifier);
  if (m === null) return undefined;
  const dir = join(PACKAGES, m[1] as string);
  const exports = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).exports as Record<
    string,
    string
  >;
  const target = exports[m[2] === undefined ? '.' : `.${m[2]}`];
  if (target === undefined) throw new Error(`${specifier} is not exported`);
  return join(dir, target);
}

const IMPORT = /^(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'([^']+)';/gms;

/** Modules (workspace files, relative to packages/) and the bare specifiers reached from `entry`. */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop() as string;
    const rel = file.slice(PACKAGES.length + 1);
    if (files.has(rel)) continue;
    files.add(rel);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      if (m[1] !== undefined) continue; // import type
      const spec = m[2] as string;
      if (spec.startsWith('.')) {
        todo.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        continue;
      }
      packages.add(spec);
      const entryFile = packageEntry(spec);
      if (entryFile !== undefined) todo.push(entryFile);
    }
  }
  return { files, packages };
}

const NATIVE_OR_SERVER = ['better-sqlite3', 'bcoin', 'fastify', 'pg', 'kysely', '@custos/server'];

describe('package graph', () => {
  it('the custos command loads neither the signer, its SQLite, the server nor a node at start', () => {
    const { packages } = staticGraph(join(PACKAGES, 'cli/src/main.ts'));
    for (const p of [...NATIVE_OR_SERVER, '@custos/signer']) expect(packages).not.toContain(p);
  });

  it("an approver's review needs only core, the signing side of bitcoin and the pure evm package (no RPC)", () => {
    const { packages } = staticGraph(join(PACKAGES, 'cli/src/review.ts'));
    expect([...packages].filter((p) => p.startsWith('@custos/')).sort()).toEqual([
      '@custos/bitcoin/sign',
      '@custos/core',
      '@custos/evm',
    ]);
    expect(packages).not.toContain('@custos/evm/state');
  });

  it('the signer loads the signing side of bitcoin only: no RPC client, block parser, builder or node', () => {
    const { files, packages } = staticGraph(join(PACKAGES, 'signer/src/index.ts'));
    expect([...packages].filter((p) => p.startsWith('@custos/bitcoin'))).toEqual(['@custos/bitcoin/sign']);
    for (const chainSide of ['rpc', 'scanner', 'block', 'build', 'regtest', 'index']) {
      expect(files).not.toContain(`bitcoin/src/${chainSide}.ts`);
    }
    for (const p of ['bcoin', 'fastify', 'pg', 'kysely', '@custos/server']) expect(packages).not.toContain(p);
  });

  it('@custos/bitcoin/sign is pure: it reaches no chain-side module', () => {
    const { files, packages } = staticGraph(join(PACKAGES, 'bitcoin/src/signing.ts'));
    for (const chainSide of ['rpc', 'scanner', 'block', 'build', 'regtest']) {
      expect(files).not.toContain(`bitcoin/src/${chainSide}.ts`);
    }
    expect([...packages].filter((p) => !p.startsWith('@noble/') && !p.startsWith('@scure/'))).toEqual([
      '@custos/core',
    ]);
  });

  it('core depends on nothing of the workspace and does no I/O', () => {
    const { packages } = staticGraph(join(PACKAGES, 'core/src/index.ts'));
    expect([...packages].filter((p) => !p.startsWith('@noble/') && !p.startsWith('@scure/'))).toEqual([]);
  });
});
