/**
 * Cold storage signed offline (issue 13), the carrier's commands:
 * `custos intents export` fetches the job queued for an offline signer and
 * writes it as a job file for removable media; `custos intents import`
 * posts the result file that signer wrote (`custos signer offline`).
 *
 * Neither file is trusted by anyone: the signer verifies every signed object
 * in the job file from its pinned genesis, and the coordinator believes the
 * result only as far as the receipt's signature by the signer's identity key
 * goes. The carrier (an admin or an operator) signs the HTTP requests, so the
 * audit log says who carried what (`signing.exported`, `signing.imported`).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CustosError,
  canonicalize,
  fromQrChunks,
  isQrChunks,
  offlineJobFile,
  offlineResultFile,
  parseJsonBytes,
  primitives,
  toQrChunks,
  utf8,
} from '@custos/core';
import { COMMON_HELP, type Command } from '../command.js';
import { openSession, type Session } from '../context.js';
import { toJson, UsageError } from '../output.js';

export const intentsExport: Command = {
  name: 'intents export',
  summary: "write an offline signer's job file (cold storage) for removable media",
  help: `custos intents export <intent id> --signer <id> --out <file> [--after <seq>] [--qr]

Fetches the job the coordinator queued for an offline signer (one that never
polls: an air-gapped machine holding a cold-storage key) and writes it as a
job file: {"v":1,"kind":"custos.offline-job","job":SignerJob,"governance":[...]},
RFC 8785 JSON. Carry it to the signer, run \`custos signer offline\` there, and
bring the result file back to \`custos intents import\`. The governance entries
are those after --after up to the job's head: by default the whole chain from
the genesis; the signer's own seq (\`custos signer status\`) makes the file
shorter. Nothing in the file is trusted by the signer: it verifies every
signed object itself. Admins and operators only; audited (signing.exported).

Options:
  --signer <id>     the offline signer whose job this is
  --out <file>      where to write the job file
  --after <seq>     only the governance entries after this seq (default: from the genesis)
  --qr              write QR lines instead of JSON: CUSTOS1:<i>/<n>:<hash>:<Base45>, one
                    QR code each (alphanumeric mode), read back in any order

Example:
  custos intents export 5d0c3a1e --signer signer-3 --out /media/usb/job.json
${COMMON_HELP}`,
  options: {
    signer: { type: 'string' },
    out: { type: 'string' },
    after: { type: 'string' },
    qr: { type: 'boolean' },
  },
  positionals: 1,
  async run(ctx, args) {
    const idText = args.positionals[0];
    if (idText === undefined) throw new UsageError('give the intent id');
    const signer = primitives.id.parse(args.required('signer', 'the offline signer'), 'signer');
    const out = resolve(ctx.cwd, args.required('out', 'the job file to write'));
    const after = args.int('after', { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? -1;
    const s = await openSession(ctx, args);
    const id = await intentId(s, idText);
    const body = await s.client.call('GET', `/v1/intents/${id}/offline-job`, {
      query: { signer, after },
    });
    // The coordinator is not trusted; this only checks it answered with a job file at all.
    const file = offlineJobFile.parse(body, 'job file');
    const json = canonicalize(file);
    writeDurably(out, `${args.bool('qr') ? toQrChunks(utf8(json)).join('\n') : json}\n`);
    const job = file.job as { id?: unknown };
    const summary = {
      intent: id,
      signer,
      job: typeof job.id === 'string' ? job.id : null,
      governanceEntries: file.governance.length,
      out,
    };
    if (args.bool('json')) ctx.io.out(toJson(summary));
    else
      ctx.io.out(
        `job ${summary.job} for ${signer} (intent ${id.slice(0, 16)}, ${summary.governanceEntries} governance entries) written to ${out}\n` +
          `next: custos signer offline --config <${signer}.json> --job <this file> --out <result file>, then custos intents import <result file>\n`,
      );
    return 0;
  },
};

export const intentsImport: Command = {
  name: 'intents import',
  summary: "post an offline signer's result file (cold storage)",
  help: `custos intents import <result file>

Posts the result file an offline signer wrote (\`custos signer offline\`):
{"v":1,"kind":"custos.offline-result","result":SignerResult}, as JSON or as
QR lines (--qr there; read in any order). The request is
signed by this device; the coordinator checks the receipt with the signer's
identity key, exactly as for an online signer, and then combines and
broadcasts as usual. A refusal is recorded with its code, and a signer's
alert becomes an alert. Importing the same file again changes nothing.
Admins and operators only; audited (signing.imported). Prints the job, the
signer's outcome and code, and the intent's status now.

Example:
  custos intents import /media/usb/result.json
${COMMON_HELP}`,
  options: {},
  positionals: 1,
  async run(ctx, args) {
    const path = args.positionals[0];
    if (path === undefined) throw new UsageError('give the result file');
    const bytes = readFileSync(resolve(ctx.cwd, path));
    const text = new TextDecoder().decode(bytes.subarray(0, 16));
    const json = isQrChunks(text) ? fromQrChunks(bytes.toString('utf8').split('\n')) : bytes;
    const file = offlineResultFile.parse(
      parseJsonBytes(json, { maxBytes: 16 << 20, maxDepth: 64 }),
      'result file',
    );
    const s = await openSession(ctx, args);
    const answer = (await s.client.call('POST', '/v1/offline/results', { body: file })) as {
      job: string;
      intent: string;
      signer: string;
      outcome: string;
      code: string | null;
      status: string;
    };
    if (args.bool('json')) ctx.io.out(toJson(answer));
    else
      ctx.io.out(
        `${answer.signer} ${answer.outcome}${answer.code === null ? '' : ` (${answer.code})`} job ${answer.job}; intent ${answer.intent.slice(0, 16)} is ${answer.status}\n`,
      );
    return 0;
  },
};

/** A full id, or a unique prefix of 8 or more hex digits. */
async function intentId(s: Session, text: string): Promise<string> {
  if (/^[0-9a-f]{64}$/.test(text)) return text;
  if (!/^[0-9a-f]{8,63}$/.test(text))
    throw new UsageError('the intent id is 64 hex digits (or a unique prefix of 8 or more)');
  const found = (await s.client.allIntents({ status: 'signing' }, 10_000)).filter((i) =>
    i.id.startsWith(text),
  );
  if (found.length === 1) return found[0]!.id;
  if (found.length === 0) throw new CustosError('NOT_FOUND', `no intent being signed starts with ${text}`);
  throw new UsageError(`${found.length} intents start with ${text}: give more digits`);
}

/** A temporary file, fsync, rename: removable media never holds half a job file. */
function writeDurably(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, utf8(text));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
