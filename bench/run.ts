/**
 * `npm run bench`: runs every benchmark suite, prints a table, and writes the
 * figures as JSON to bench/results/<time>.json so runs can be compared.
 * `npm run bench -- core` runs one suite. `soak` (10 minutes; `npm run bench
 * -- soak --minutes 2` shortens it) and `watch` (the watcher, issue 12; a few
 * minutes) run only when named.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';
import { auditBench } from './audit.js';
import { consoleBench } from './console.js';
import { coreBench } from './core.js';
import { e2eBench } from './e2e.js';
import { printTable, type Row } from './harness.js';
import { signerBench } from './signer.js';
import { soakBench } from './soak.js';
import { watchBench } from './watch.js';

const suites: Record<string, () => Row[] | Promise<Row[]>> = {
  core: coreBench,
  signer: signerBench,
  audit: () => auditBench(),
  console: () => consoleBench(),
  e2e: () => e2eBench(),
  soak: () => soakBench(),
  watch: () => watchBench(),
};
/** Suites that run only when named. */
const onlyWhenNamed = new Set(['soak', 'watch']);

const wanted = process.argv.slice(2).filter((a) => Object.hasOwn(suites, a));
const rows: Row[] = [];
for (const [name, run] of Object.entries(suites)) {
  if (wanted.length > 0 ? !wanted.includes(name) : onlyWhenNamed.has(name)) continue;
  process.stdout.write(`running ${name}...\n`);
  rows.push(...(await run()));
}
printTable(rows);
const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const file = new URL(`${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(
  file,
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, platform: platform(), arch: arch(), cpus: cpus().length, rows }, null, 2)}\n`,
);
process.stdout.write(`written ${file.pathname}\n`);
