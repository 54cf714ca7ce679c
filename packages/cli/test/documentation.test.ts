/**
 * The documentation a new user follows resolves: every relative link in the
 * README files and docs/*.md names a file of the repository, and nothing in
 * the code or the docs cites a design document that is not in it (the
 * architecture, threats and API pages live in docs/).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(new URL('../../..', import.meta.url).pathname);
const SKIP_DIRS = new Set(['node_modules', '.git', '.custos-dev', 'results', 'dist', 'coverage']);
const TEXT = /\.(ts|js|mjs|cjs|md|json|ya?ml|sh)$/;

/** Every text file of the repository (not dependencies, not generated results), as paths from the root. */
function files(dir = ROOT): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP_DIRS.has(name) || (name.startsWith('.') && name !== '.ci')) continue;
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...files(path));
    else if ((TEXT.test(name) || dirname(path).endsWith('.ci')) && st.size < 2_000_000) {
      out.push(relative(ROOT, path));
    }
  }
  return out;
}

/** Relative targets of markdown links `[text](target)`, without their #fragment. */
function relativeLinks(markdown: string): string[] {
  const out: string[] = [];
  for (const m of markdown.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
    out.push(target.split('#')[0]!);
  }
  return out;
}

describe('documentation', () => {
  const all = files();
  const markdown = all.filter(
    (f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f) || /^packages\/.+\/README\.md$/.test(f),
  );

  it('finds the README, the docs pages and the code to check', () => {
    for (const f of ['README.md', 'docs/architecture.md', 'docs/threats.md', 'docs/api.md']) {
      expect(markdown).toContain(f);
    }
    expect(all.filter((f) => f.endsWith('.ts')).length).toBeGreaterThan(100);
  });

  it('resolves every relative link in README.md and docs/*.md to a file of the repository', () => {
    const broken: string[] = [];
    let links = 0;
    for (const f of markdown) {
      for (const target of relativeLinks(readFileSync(join(ROOT, f), 'utf8'))) {
        links++;
        const path = resolve(ROOT, dirname(f), target);
        if (!path.startsWith(ROOT) || !existsSync(path)) broken.push(`${f}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
    expect(links).toBeGreaterThan(5);
  });

  it('cites only documents that are in the repository (no DESIGN, THREATS or STYLE files outside docs/)', () => {
    // Spelt in parts so this file does not cite them itself.
    const cited = new RegExp(`\\b(${['DESIGN', 'THREATS', 'STYLE'].join('|')})\\.md\\b`);
    const offenders = all
      .filter((f) => !f.startsWith('docs/'))
      .flatMap((f) =>
        readFileSync(join(ROOT, f), 'utf8')
          .split('\n')
          .map((line, i) => ({ f, line, i }))
          .filter((x) => cited.test(x.line))
          .map((x) => `${x.f}:${x.i + 1}: ${x.line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });
});
