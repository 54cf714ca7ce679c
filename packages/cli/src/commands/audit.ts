/**
 * `custos audit verify` (THREATS 30): streams the coordinator's audit log,
 * page by page, through core's AuditChainVerifier with the checkpoints the
 * signers countersigned and the signers' keys from the governance verified
 * here. A deleted, edited, reordered or truncated row fails the run and the
 * first bad entry is named; memory stays constant however long the log.
 *
 * The coordinator cannot help a rewrite pass: the links are hashes this
 * client recomputes, and the checkpoints are signed by signer keys it knows
 * from governance, not from the coordinator.
 */
import { AuditChainVerifier, type Digest } from '@custos/core';
import { COMMON_HELP, type Command } from '../command.js';
import { openSession } from '../context.js';
import { toJson } from '../output.js';

const PAGE = 1000;

export const auditVerify: Command = {
  name: 'audit verify',
  summary: 'verify the audit log: hash chain and signer checkpoints',
  help: `custos audit verify [--progress] [--json]

Reads the whole audit log (GET /v1/audit, ${PAGE} entries a page) and checks
every link of its hash chain and every checkpoint the signers countersigned,
with the signer keys from the governance verified from the pinned genesis.
Exit 0 when the log is intact; exit 1 naming the first bad entry:

  custos: AUDIT_CHAIN_BROKEN: the audit log was altered
    entry 4711 is missing (seq 4712 is in its place): rows were deleted or reordered

A progress bar (entries/s, percentage) is drawn on stderr when it is a
terminal, or always with --progress.

Example:
  custos audit verify --as auditor
${COMMON_HELP}`,
  options: { progress: { type: 'boolean' } },
  async run(ctx, args) {
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const checkpoints = await s.client.checkpoints();
    const signerKeys = new Map([...state.signers.values()].map((sg) => [sg.id, sg.publicKey as string]));
    const verifier = new AuditChainVerifier({ checkpoints, signerKeys, expectedOrg: s.genesis as Digest });
    const showProgress = args.bool('progress') || process.stderr.isTTY === true;
    const progress = new Progress(ctx.io.err, showProgress, ctx.now);
    let from = 0;
    let failed = null as ReturnType<AuditChainVerifier['push']>;
    let total: number | null = null;
    for (;;) {
      const page = await s.client.audit(from, PAGE);
      if (page.head !== null) total = page.head.seq + 1;
      for (const e of page.entries) {
        failed = verifier.push(e);
        if (failed !== null) break;
      }
      progress.update(verifier.entries, total);
      if (failed !== null || page.entries.length === 0) break;
      const last = page.entries.at(-1)!;
      // A page that does not move forward would loop for ever; the verifier has already judged its seqs.
      if (last.seq < from) break;
      from = last.seq + 1;
      if (total !== null && from >= total) break;
    }
    progress.done();
    const result = failed ?? verifier.finish();
    if (args.bool('json')) {
      ctx.io.out(toJson(result));
      return result.ok ? 0 : 1;
    }
    if (result.ok) {
      ctx.io.out(
        `audit log intact: ${result.entries} entries, head ${result.head ?? '(empty)'}, ${result.checkpointsVerified} signer checkpoint(s) verified\n`,
      );
      const lastCheckpoint = Math.max(-1, ...checkpoints.map((c) => c.checkpoint.seq));
      if (result.entries > 0 && lastCheckpoint < result.entries - 1) {
        ctx.io.err(
          `note: entries after ${lastCheckpoint < 0 ? 'the start' : `seq ${lastCheckpoint}`} are not yet covered by a signer checkpoint\n`,
        );
      }
      return 0;
    }
    const named = result.message.startsWith(`entry ${result.firstBadSeq} `)
      ? result.message
      : `entry ${result.firstBadSeq} is the first bad entry: ${result.message}`;
    ctx.io.err(`custos: ${result.code}: ${named}\n`);
    return 1;
  },
};

/** A progress bar on stderr: entries verified, entries per second, percentage. */
class Progress {
  private readonly started: number;
  private lastDraw = 0;
  constructor(
    private readonly write: (text: string) => void,
    private readonly enabled: boolean,
    private readonly now: () => number,
  ) {
    this.started = now();
  }

  update(done: number, total: number | null): void {
    if (!this.enabled) return;
    const t = this.now();
    if (t - this.lastDraw < 100 && (total === null || done < total)) return;
    this.lastDraw = t;
    const rate = Math.round(done / Math.max(0.001, (t - this.started) / 1000));
    const width = 30;
    if (total !== null && total > 0) {
      const pct = Math.min(100, Math.floor((done / total) * 100));
      const filled = Math.round((pct / 100) * width);
      this.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${done}/${total} entries, ${rate}/s `,
      );
    } else {
      this.write(`\r${done} entries, ${rate}/s `);
    }
  }

  done(): void {
    if (this.enabled) this.write('\n');
  }
}
