/**
 * Cold storage signed offline (issue 13): the signer on an air-gapped
 * machine, fed by files on removable media instead of the coordinator's feed.
 *
 *   custos signer offline --config signer-2.json --job job.json --out result.json
 *
 * This is a thin shell around the online signer, not a second signer: the
 * job file's job goes to {@link Signer.handle} exactly as a job from
 * `/v1/signer/jobs` does, and the file's governance entries are served to it
 * as `/v1/governance/entries` would serve them (the entries after the seq it
 * asks for, up to the one it asks for). So the decision (decideJob, its
 * order of checks and codes), the SQLite ledger written durably before the
 * signature leaves, the governance sync with its first-seen times, the
 * equivocation freeze and the receipt signed by the identity key are the
 * online signer's own, and a tampered byte anywhere in the file (intent,
 * approval, PSBT, governance entry) is refused with the code the online
 * signer gives for it. Nothing in the file is believed: its envelope is
 * unsigned, and every object the signer acts on is a signed one it verifies
 * from its pinned genesis.
 *
 * Idempotence comes from the ledger: the same job file again gets the same
 * stored result (byte for byte, signature included), and another PSBT for an
 * intent already signed is DUPLICATE_INTENT (THREATS 14), as online.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import {
  CustosError,
  canonicalize,
  fromQrChunks,
  isQrChunks,
  OFFLINE_RESULT_KIND,
  type OfflineJobFile,
  type OfflineResultFile,
  offlineJobFile,
  parseJsonBytes,
  type SignedGovernanceEntry,
  type SignerResult,
  signedGovernanceEntry,
  toQrChunks,
  utf8,
} from '@custos/core';
import { type GovernanceSource, Signer, type SignerOptions } from './signer.js';

/** Largest job file read: a PSBT of up to 3 MB (base64) and a page of governance entries. */
export const MAX_JOB_FILE_BYTES = 64 << 20;

/**
 * Reads a job file's envelope (version, kind, a job and a list of entries),
 * as JSON or in its QR form (core's qr-chunks: Base45 lines, in any order).
 * A file that is not one is the operator's mistake, thrown with its decoding
 * code; what is inside the envelope is left to the signer, which decodes it
 * as it decodes its online feed.
 */
export function readJobFile(bytes: Uint8Array): OfflineJobFile {
  const head = new TextDecoder().decode(bytes.subarray(0, 16));
  const json = isQrChunks(head)
    ? fromQrChunks(new TextDecoder('utf-8', { fatal: true }).decode(bytes).split('\n'))
    : bytes;
  return offlineJobFile.parse(parseJsonBytes(json, { maxBytes: MAX_JOB_FILE_BYTES, maxDepth: 64 }));
}

/**
 * The job file's governance entries as a {@link GovernanceSource}: the
 * entries with after < seq <= upto, as the coordinator's
 * `/v1/governance/entries?after=&upto=` answers. An entry whose seq cannot be
 * read is passed on, so the signer's decoder refuses it with its code.
 */
export class FileGovernanceSource implements GovernanceSource {
  constructor(private readonly entries: readonly unknown[]) {}

  async governanceEntries(afterSeq: number, uptoSeq: number): Promise<unknown> {
    return this.entries.filter((e) => {
      const seq = seqOf(e);
      return seq === null || (seq > afterSeq && seq <= uptoSeq);
    });
  }
}

/**
 * Decides the job of a job file with the online signer's shell over this
 * signer's own store. A store with no governance yet is seeded with the
 * file's genesis entry, checked against the pinned digest (Signer.init), as
 * the online signer seeds it from the coordinator's.
 *
 * Throws (a caller's mistake, nothing decided or recorded) when the job is
 * for another signer, or a new store's file carries no genesis.
 */
export async function signOffline(opts: SignerOptions, file: OfflineJobFile): Promise<SignerResult> {
  const named = jobSignerOf(file.job);
  if (named !== null && named !== opts.id) {
    throw new CustosError('NOT_AUTHORIZED', `the job file is for signer ${named}, this is ${opts.id}`);
  }
  const signer =
    opts.store.governance().length === 0 ? Signer.init(opts, genesisOf(file)) : Signer.open(opts);
  return signer.handle(file.job, new FileGovernanceSource(file.governance));
}

/** The result file of a decision: what `custos intents import` posts. */
export function resultFile(result: SignerResult): OfflineResultFile {
  return { v: 1, kind: OFFLINE_RESULT_KIND, result };
}

/**
 * Writes the result file (RFC 8785 JSON, or with `qr` its QR lines) durably:
 * a temporary file, fsync, then a rename, so the media never holds half a
 * result. The ledger row was committed before the result existed; writing
 * the file again is harmless.
 */
export function writeResultFile(path: string, result: SignerResult, opts: { qr?: boolean } = {}): void {
  const json = canonicalize(resultFile(result));
  const text = opts.qr === true ? toQrChunks(utf8(json)).join('\n') : json;
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, utf8(`${text}\n`));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function genesisOf(file: OfflineJobFile): SignedGovernanceEntry {
  const raw = file.governance.find((e) => seqOf(e) === 0);
  if (raw === undefined) {
    throw new CustosError(
      'GOVERNANCE_CHAIN_BROKEN',
      'this signer holds no governance yet and the job file carries no genesis: export the job with the whole chain (--after -1)',
    );
  }
  return signedGovernanceEntry.parse(raw, 'governance[0]');
}

function seqOf(e: unknown): number | null {
  const entry = typeof e === 'object' && e !== null ? (e as { entry?: unknown }).entry : undefined;
  const seq = typeof entry === 'object' && entry !== null ? (entry as { seq?: unknown }).seq : undefined;
  return typeof seq === 'number' && Number.isSafeInteger(seq) ? seq : null;
}

function jobSignerOf(job: unknown): string | null {
  const s = typeof job === 'object' && job !== null ? (job as { signer?: unknown }).signer : undefined;
  return typeof s === 'string' ? s : null;
}
