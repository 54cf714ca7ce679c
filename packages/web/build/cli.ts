/** `npm run build -w @custos/web`: writes packages/web/dist and prints each file with its hashes. */
import { DIST, writeConsole } from './build.js';

const dir = process.argv[2] ?? DIST;
const { manifest } = await writeConsole(dir);
for (const f of manifest.files)
  process.stdout.write(`${f.path.padEnd(11)} ${String(f.bytes).padStart(8)} B  sha256 ${f.sha256}\n`);
process.stdout.write(`wrote ${dir}\n`);
