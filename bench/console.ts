/**
 * The approver console (issue 10): the size of what a browser downloads, and
 * how long the browser takes to verify a 1,000-entry governance chain from
 * the genesis with core's verifyGovernanceChain, the check the console runs
 * at sign-in (measured in Debian's Chromium against the same chain in Node).
 */
import { gzipSync } from 'node:zlib';
import {
  type AppliedEntry,
  applyGovernance,
  buildEntry,
  type GovernanceEntryOf,
  type GovernanceState,
  type LaterKind,
  type SignedGovernanceEntry,
  signGovernanceEntry,
  verifyGovernanceChain,
} from '@custos/core';
import { createOrg, T0 } from '@custos/test-support/org';
import { build } from 'esbuild';
import { buildConsole, WEB_ROOT } from '../packages/web/build/build.js';
import { launchChromium } from '../packages/web/test/support/browser.js';
import type { Row } from './harness.js';

const COUNT = 1_000;

function chain(): { pinned: string; entries: AppliedEntry[] } {
  const org = createOrg({});
  const admins = org.admins.slice(0, 2).map((a) => a.device.signer);
  const entries: AppliedEntry[] = [{ signed: org.genesis, seenAt: org.seenAt }];
  let state: GovernanceState = org.state;
  for (let i = 1; i <= COUNT; i++) {
    const [kind, body] =
      i % 2 === 1
        ? ([
            'address.add',
            { id: `dest-${i}`, chain: 'bitcoin:regtest', address: `bcrt1qbench${i}`, label: `Bench ${i}` },
          ] as const)
        : (['address.remove', { id: `dest-${i - 1}` }] as const);
    const entry = buildEntry(state, kind as LaterKind, body as GovernanceEntryOf<LaterKind>['body'], T0 + i);
    const signed: SignedGovernanceEntry = signGovernanceEntry(entry, admins);
    const next = applyGovernance(state, signed, T0 + i);
    if (!next.ok) throw new Error(`bench chain entry ${i} refused: ${next.message}`);
    state = next.value;
    entries.push({ signed, seenAt: T0 + i });
  }
  return { pinned: org.orgId, entries };
}

export async function consoleBench(): Promise<Row[]> {
  const rows: Row[] = [];
  const t0 = performance.now();
  const { files } = await buildConsole();
  const buildMs = performance.now() - t0;
  const js = files.get('app.js')!;
  const total = [...files.values()].reduce((n, f) => n + f.length, 0);
  const gz = [...files.values()].reduce((n, f) => n + gzipSync(f, { level: 9 }).length, 0);
  rows.push({ suite: 'console', figure: 'bundle: app.js', value: js.length / 1024, unit: 'KiB' });
  rows.push({ suite: 'console', figure: 'bundle: all files', value: total / 1024, unit: 'KiB' });
  rows.push({ suite: 'console', figure: 'bundle: all files, gzip -9', value: gz / 1024, unit: 'KiB' });
  rows.push({ suite: 'console', figure: 'build (esbuild, in memory)', value: buildMs, unit: 'ms' });

  const { pinned, entries } = chain();
  const n0 = performance.now();
  const inNode = verifyGovernanceChain(pinned as never, entries);
  const nodeMs = performance.now() - n0;
  if (!inNode.ok) throw new Error(inNode.message);

  // core's verifier bundled for the browser exactly as the console bundles it (same inject, platform).
  const probe = await build({
    absWorkingDir: WEB_ROOT,
    stdin: {
      contents:
        "import { verifyGovernanceChain } from '@custos/core'; globalThis.verifyChain = verifyGovernanceChain;",
      resolveDir: WEB_ROOT,
      loader: 'ts',
    },
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    minify: true,
    inject: ['src/node-buffer.ts'],
    logLevel: 'silent',
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.addScriptTag({ content: probe.outputFiles[0]!.text });
    const result = (await page.evaluate(
      `(() => { const entries = ${JSON.stringify(entries)}; const t = performance.now();
        const r = verifyChain(${JSON.stringify(pinned)}, entries); return { ms: performance.now() - t, ok: r.ok, head: r.ok ? r.value.head : r.message }; })()`,
    )) as { ms: number; ok: boolean; head: string };
    if (!result.ok || result.head !== inNode.value.head)
      throw new Error(`browser verify failed: ${result.head}`);
    rows.push({
      suite: 'console',
      figure: `governance chain verify in Chromium (${COUNT} entries)`,
      value: result.ms,
      unit: 'ms',
      note: '2 admin signatures per entry',
    });
    rows.push({
      suite: 'console',
      figure: `same chain in Node (${COUNT} entries)`,
      value: nodeMs,
      unit: 'ms',
    });
    rows.push({ suite: 'console', figure: 'Chromium / Node', value: result.ms / nodeMs, unit: 'ratio' });
  } finally {
    await browser.close();
  }
  return rows;
}
