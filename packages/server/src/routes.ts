/**
 * Every route of docs/api.md, declared once: its spec (what the OpenAPI
 * document says and what app.ts enforces) next to its handler. Handlers get
 * an authenticated principal and a decoded body; the decisions are in
 * coordinator.ts, the signing path behind the SigningPipeline.
 */
import {
  ADMIN_ROLE,
  CustosError,
  canonicalize,
  type Digest,
  type GovernanceEntry,
  governanceSignature,
  governanceSummary,
  offlineResultFile,
  primitives,
  receiptDigest,
  refuse,
  schema,
  sha256,
  signedApproval,
  signedBump,
  signedCheckpoint,
  signedGovernanceEntry,
  signedIntent,
  signerResult,
  toHex,
  utf8,
} from '@custos/core';
import type { AuthContext, KeyResolver, Principal } from './auth.js';
import { decodeBody } from './body.js';
import type { RequestInfo } from './coordinator.js';
import { INTENT_STATUSES, MAX_GOVERNANCE_PAGE, PROPOSAL_STATUSES } from './db/repository.js';
import { initOrganization } from './governance-view.js';
import { exportJob, importResult, mayCarryJobs } from './offline.js';
import { enumParam, intParam, stringParam } from './openapi.js';
import { type Answer, type Call, type RouteContext, type RouteDef, route } from './route.js';

const cursor = schema.string({ min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/, description: 'opaque cursor' });
const cosignBody = schema.object(
  { signatures: schema.array(governanceSignature, { min: 1, max: 100 }) },
  {},
  'Co-signatures of an open proposal.',
);

/** The authenticated caller of a route that requires one. */
function authOf(c: { auth: AuthContext | null }): AuthContext {
  if (c.auth === null) throw new CustosError('INTERNAL', 'an authenticated route ran without authentication');
  return c.auth;
}

function idParam(c: { params: Readonly<Record<string, string>> }): string {
  return c.params.id ?? '';
}

export function defineRoutes(ctx: RouteContext): RouteDef[] {
  const { store, pipeline, engine, governance, clock, limits } = ctx;
  const large = limits.maxLargeBodyBytes;

  const immutable = (method: 'PUT' | 'PATCH' | 'DELETE', operationId: string): RouteDef =>
    route(
      {
        method,
        url: '/v1/intents/:id',
        operationId,
        summary: 'Refused: an intent is immutable (a change is a new intent). Audited (THREATS 8).',
        auth: 'any',
        anyBody: true,
        success: 405,
        successDescription: 'never: always INTENT_IMMUTABLE',
        errors: ['INTENT_IMMUTABLE'],
      },
      async (c) => engine.refuseEdit(authOf(c).principal, idParam(c), c.info),
    );

  return [
    // ---------------------------------------------------------------- public
    route(
      {
        method: 'GET',
        url: '/v1/health',
        operationId: 'health',
        summary: 'The process is up.',
        auth: 'none',
        success: 200,
        successDescription: '{"status":"ok"}',
        errors: [],
      },
      async () => ({ body: { status: 'ok' } }),
    ),
    route(
      {
        method: 'GET',
        url: '/v1/ready',
        operationId: 'ready',
        summary:
          'The database answers, the governance chain verifies and the chain node answers (for load balancers: no signature needed).',
        auth: 'none',
        success: 200,
        successDescription: '{"status":"ready","governanceSeq","chain"}',
        errors: [],
      },
      async () => {
        await store.ping();
        const state = await governance.current();
        const chain = await pipeline.chainStatus().catch(() => ({
          ok: false,
          height: null,
          message: 'the chain status could not be read',
        }));
        if (!chain.ok) {
          throw new CustosError(
            'UNAVAILABLE',
            `the chain node does not answer${chain.message ? `: ${chain.message}` : ''}`,
          );
        }
        return { body: { status: 'ready', governanceSeq: state.seq, chain } };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/openapi.json',
        operationId: 'openapi',
        summary: 'This API as an OpenAPI 3.1 document, built from the schemas that validate requests.',
        auth: 'none',
        success: 200,
        successDescription: 'the OpenAPI document',
        errors: [],
      },
      async () => ({ body: ctx.openapi() }),
    ),

    // ---------------------------------------------------------------- intents
    route(
      {
        method: 'POST',
        url: '/v1/intents',
        operationId: 'createIntent',
        summary:
          "Submit an intent signed on the requester's device; the request is signed by that same device. " +
          'A deny of the policy preview is refused with its code and nothing is stored; an intent an automated ' +
          'rule (approvals: []) allows is approved at once and handed to the signers with no approval.',
        auth: 'member',
        body: signedIntent,
        success: 201,
        successDescription: '{"id","status","decision"}',
        errors: [
          'INTENT_SIGNATURE_INVALID',
          'DUPLICATE_INTENT',
          'EXPIRED',
          'NOT_YET_VALID',
          'WRONG_ORG',
          'WRONG_CHAIN',
          'UNKNOWN_WALLET',
          'UNKNOWN_ASSET',
          'DESTINATION_NOT_ALLOWED',
          'DESTINATION_NOT_ACTIVE',
          'LOOKALIKE_ADDRESS',
          'LIMIT_EXCEEDED',
          'POLICY_DENIED',
          'FROZEN',
        ],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        return { body: await engine.createIntent(principal, state, c.body, c.info) };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/intents',
        operationId: 'listIntents',
        summary: 'Intents, newest first, with a cursor.',
        auth: 'any',
        query: {
          status: enumParam(INTENT_STATUSES, 'only intents with this status'),
          requester: stringParam(primitives.id, 'only intents of this requester'),
          wallet: stringParam(primitives.id, 'only intents from this wallet'),
          limit: intParam(1, 200, 'page size (default 50)'),
          cursor: stringParam(cursor, 'the `next` of the previous page'),
        },
        success: 200,
        successDescription: '{"intents":[IntentSummary],"next"}',
        errors: [],
      },
      async (c) => ({ body: await engine.listIntents(c.query) }),
    ),
    route(
      {
        method: 'GET',
        url: '/v1/intents/:id',
        operationId: 'getIntent',
        summary:
          "One intent with its approvals, the policy preview now, its transaction and the signers' answers.",
        auth: 'any',
        success: 200,
        successDescription:
          'IntentView (an EVM Safe intent, once built, adds "safeTx":{"proposal":SafeTx as in SignerJob,"safeTxHash","executionTxHash"|null})',
        errors: ['NOT_FOUND'],
      },
      async (c) => ({ body: await engine.intentView(idParam(c), authOf(c).state) }),
    ),
    route(
      {
        method: 'GET',
        url: '/v1/intents/:id/receipts',
        operationId: 'getIntentReceipts',
        summary:
          "Every signer's signed receipt for this intent's jobs (fee bumps included), as the signers posted them: a watcher or auditor checks each by the signer's identity key (receiptDigest, Ed25519) instead of trusting the coordinator.",
        auth: 'any',
        success: 200,
        successDescription:
          '{"receipts":[{"receipt":Receipt,"signature":hex Ed25519 over receiptDigest(receipt)}]}',
        errors: ['NOT_FOUND'],
      },
      async (c) => ({ body: await engine.receipts(idParam(c)) }),
    ),
    immutable('PUT', 'replaceIntent'),
    immutable('PATCH', 'editIntent'),
    immutable('DELETE', 'deleteIntent'),
    route(
      {
        method: 'POST',
        url: '/v1/intents/:id/approvals',
        operationId: 'approveIntent',
        summary:
          "Submit an approval (or rejection) signed on the approver's device; the request is signed by that same device.",
        auth: 'member',
        body: signedApproval,
        success: 200,
        successDescription:
          'IntentView (an EVM Safe intent, once built, adds "safeTx":{"proposal":SafeTx as in SignerJob,"safeTxHash","executionTxHash"|null})',
        errors: [
          'NOT_FOUND',
          'APPROVAL_SIGNATURE_INVALID',
          'SELF_APPROVAL',
          'EXPIRED',
          'NOT_YET_VALID',
          'INTENT_REJECTED',
          'CONFLICT',
        ],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        return { body: await engine.addApproval(principal, state, idParam(c), c.body, c.info) };
      },
    ),
    route(
      {
        method: 'POST',
        url: '/v1/intents/:id/bumps',
        operationId: 'bumpIntent',
        summary:
          "Bump the fee of a broadcast, unconfirmed Bitcoin withdrawal (issue 13, BIP 125): a bump signed on the requester's device, " +
          'the request signed by that same device. The coordinator builds a replacement with the same inputs and outputs and the ' +
          'higher fee taken from the change, and queues it for the signers that signed the original; each signs it only if it ' +
          'spends an input of every transaction it signed for the intent and pays every payee exactly as before. Idempotent per bump.',
        auth: 'member',
        body: signedBump,
        success: 202,
        successDescription:
          '{"id","bump","status":"signing"|"broadcast"|"mined"|"replaced"|"refused","code","message","txid","fee","replaces","signers":[…],"createdAt","updatedAt"}',
        errors: [
          'NOT_FOUND',
          'NOT_AUTHORIZED',
          'INTENT_SIGNATURE_INVALID',
          'NOT_A_REPLACEMENT',
          'FEE_TOO_HIGH',
          'INSUFFICIENT_FUNDS',
          'EXPIRED',
          'NOT_YET_VALID',
          'LIFETIME_TOO_LONG',
          'WRONG_ORG',
          'FROZEN',
          'CONFLICT',
          'QUORUM_NOT_MET',
          'UNSUPPORTED_TRANSACTION',
          'NOT_A_MEMBER',
          'UNKNOWN_DEVICE',
          'DEVICE_REVOKED',
          'DEVICE_NOT_ACTIVE',
        ],
      },
      async (c) => {
        const { principal } = authOf(c);
        const b = c.body.bump;
        if (
          principal.kind !== 'member' ||
          principal.member !== b.requester ||
          principal.device !== b.device
        ) {
          return ctx.authenticator.refuseRequest(
            principal.keyId,
            'NOT_AUTHORIZED',
            `a bump is submitted by its requester's device: sign the request as member:${b.requester}/${b.device}`,
            c.info,
          );
        }
        if (pipeline.bump === undefined)
          throw new CustosError('UNAVAILABLE', 'this coordinator does not bump fees');
        return { body: await pipeline.bump(idParam(c), c.body, principal.keyId) };
      },
    ),

    // ---------------------------------------------------------------- governance
    route(
      {
        method: 'GET',
        url: '/v1/governance/head',
        operationId: 'governanceHead',
        summary: 'The verified governance head.',
        auth: 'any',
        success: 200,
        successDescription: '{"seq","digest"}',
        errors: [],
      },
      async (c) => {
        const { state } = authOf(c);
        return { body: { seq: state.seq, digest: state.head } };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/governance/entries',
        operationId: 'governanceEntries',
        summary:
          'Stored governance entries with after < seq <= upto, at most 1000 (signers verify them themselves).',
        auth: 'any',
        query: {
          after: intParam(
            -1,
            Number.MAX_SAFE_INTEGER,
            'start after this seq (-1: from the genesis; default -1)',
          ),
          upto: intParam(0, Number.MAX_SAFE_INTEGER, 'up to this seq (default: the head)'),
        },
        success: 200,
        successDescription: '{"entries":[SignedGovernanceEntry]}',
        errors: [],
      },
      async (c) => {
        const { state } = authOf(c);
        const entries = await store.governance.range(
          c.query.after ?? -1,
          c.query.upto ?? state.seq,
          MAX_GOVERNANCE_PAGE,
        );
        return { body: { entries: entries.map((e) => e.signed) } };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/governance/state',
        operationId: 'governanceState',
        summary: 'A readable summary of the verified governance state.',
        auth: 'any',
        success: 200,
        successDescription: 'the state summary',
        errors: [],
      },
      async (c) => ({ body: governanceSummary(authOf(c).state, clock()) }),
    ),
    route(
      {
        method: 'POST',
        url: '/v1/governance/genesis',
        operationId: 'storeGenesis',
        summary:
          'Store the genesis of a coordinator that has none, signed by an admin the genesis lists. ' +
          'Harmless to expose: signers and clients pin the genesis digest, so another genesis is useless.',
        auth: 'genesis',
        body: signedGovernanceEntry,
        bodyLimit: large,
        success: 201,
        successDescription: '{"status":"applied","seq":0,"org"}',
        errors: [
          'CONFLICT',
          'GOVERNANCE_SIGNATURE_INVALID',
          'GOVERNANCE_INVALID',
          'GOVERNANCE_CHAIN_BROKEN',
          'WALLET_ALIAS',
          'QUORUM_NOT_MET',
          'WRONG_ORG',
        ],
      },
      async (c) => storeGenesis(ctx, c),
    ),
    route(
      {
        method: 'POST',
        url: '/v1/governance/proposals',
        operationId: 'proposeGovernance',
        summary:
          'Propose a governance entry with at least one admin signature (for a freeze: an admin or a watcher); ' +
          'applied at once when its signatures reach the quorum, else kept open.',
        auth: 'member',
        body: signedGovernanceEntry,
        bodyLimit: large,
        success: 201,
        successDescription:
          '{"status":"applied","id","seq","warnings"} or {"status":"open","id","seq","have","need","warnings"}',
        errors: [
          'GOVERNANCE_SIGNATURE_INVALID',
          'GOVERNANCE_INVALID',
          'GOVERNANCE_CHAIN_BROKEN',
          'WALLET_ALIAS',
          'WRONG_ORG',
          'CONFLICT',
          // A policy whose zero-approval rule has no per-transaction maximum or rolling limit (issue 13).
          'UNBOUNDED_AUTOMATION',
        ],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        return {
          body: await engine.submitGovernance(principal, state, c.body.entry, c.body.signatures, c.info),
        };
      },
    ),
    route(
      {
        method: 'POST',
        url: '/v1/governance/proposals/:id/signatures',
        operationId: 'cosignGovernance',
        summary: 'Add admin signatures to an open proposal; applied when they reach the quorum.',
        auth: 'member',
        body: cosignBody,
        bodyLimit: large,
        success: 200,
        successDescription: 'as for a proposal',
        errors: [
          'NOT_FOUND',
          'GOVERNANCE_SIGNATURE_INVALID',
          'GOVERNANCE_INVALID',
          'GOVERNANCE_CHAIN_BROKEN',
          'WALLET_ALIAS',
          'WRONG_ORG',
          'CONFLICT',
        ],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        return { body: await engine.cosign(principal, state, idParam(c), c.body.signatures, c.info) };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/governance/proposals',
        operationId: 'listProposals',
        summary: 'Governance proposals, with look-alike warnings (THREATS 21).',
        auth: 'any',
        query: { status: enumParam(PROPOSAL_STATUSES, 'only proposals with this status') },
        success: 200,
        successDescription: '{"proposals":[{"id","seq","kind","entry","signatures","status","warnings"}]}',
        errors: [],
      },
      async (c) => ({ body: { proposals: await engine.listProposals(authOf(c).state, c.query.status) } }),
    ),
    route(
      {
        method: 'GET',
        url: '/v1/wallets',
        operationId: 'listWallets',
        summary: 'Wallets from governance with what the chain says of them (balance and UTXOs may be null).',
        auth: 'any',
        success: 200,
        successDescription:
          '{"wallets":[Wallet & {"balance","utxos","receiveAddress","receiveIndex"?} & ({"balances":[{"asset","balance"}]|null} for an evm-safe: every registered asset of the Safe, base units; "balance" is its native coin, "receiveAddress" the Safe)]}',
        errors: [],
      },
      async (c) => {
        const { state } = authOf(c);
        const summaries = new Map((await pipeline.wallets()).map((s) => [s.id, s]));
        const wallets = [...state.wallets.values()].map((w) => {
          const s = summaries.get(w.id);
          return {
            ...w,
            balance: s?.balance ?? null,
            utxos: s?.utxos ?? null,
            receiveAddress: s?.receiveAddress ?? null,
            ...(s?.receiveIndex === undefined ? {} : { receiveIndex: s.receiveIndex }),
            ...(w.kind === 'evm-safe' ? { balances: s?.balances ?? null } : {}),
          };
        });
        return { body: { wallets } };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/address-book',
        operationId: 'addressBook',
        summary: 'Address-book entries with when each becomes (or became) active.',
        auth: 'any',
        success: 200,
        successDescription: '{"entries":[{"entry","activeFrom","active"}]}',
        errors: [],
      },
      async (c) => {
        const now = clock();
        const entries = [...authOf(c).state.addresses.values()].map((a) => ({
          entry: a.value,
          activeFrom: a.activeFrom,
          active: a.activeFrom <= now,
        }));
        return { body: { entries } };
      },
    ),

    // ---------------------------------------------------------------- signer feed
    route(
      {
        method: 'GET',
        url: '/v1/signer/jobs',
        operationId: 'signerJobs',
        summary: "This signer's jobs; long-polls up to `wait` ms when there are none.",
        auth: 'signer',
        query: {
          wait: intParam(0, limits.maxWaitMs, `how long to wait for a job, ms (at most ${limits.maxWaitMs})`),
        },
        success: 200,
        successDescription: '{"jobs":[SignerJob],"checkpoint"}',
        errors: [],
      },
      async (c) => {
        const p = signerOf(authOf(c).principal);
        const gone = new AbortController();
        const onClose = (): void => gone.abort();
        c.reply.raw.once('close', onClose);
        try {
          const feed = await pipeline.jobsFor(
            p,
            c.query.wait ?? 0,
            AbortSignal.any([gone.signal, ctx.closing]),
          );
          return { body: { jobs: feed.jobs, checkpoint: feed.checkpoint } };
        } finally {
          c.reply.raw.off('close', onClose);
        }
      },
    ),
    route(
      {
        method: 'POST',
        url: '/v1/signer/results',
        operationId: 'signerResult',
        summary: "A signer's signed receipt for a job (checked by the pipeline).",
        auth: 'signer',
        body: signerResult,
        bodyLimit: large,
        success: 204,
        successDescription: 'accepted',
        errors: ['NOT_FOUND', 'CONFLICT', 'BAD_SIGNATURE'],
      },
      async (c) => {
        await pipeline.acceptResult(signerOf(authOf(c).principal), c.body);
        return {};
      },
    ),
    route(
      {
        method: 'POST',
        url: '/v1/audit/checkpoints',
        operationId: 'auditCheckpoint',
        summary: "A signer's countersignature of an audit head.",
        auth: 'signer',
        body: signedCheckpoint,
        success: 204,
        successDescription: 'accepted',
        errors: ['CHECKPOINT_INVALID', 'CONFLICT'],
      },
      async (c) => {
        const signer = signerOf(authOf(c).principal);
        if (c.body.checkpoint.signer !== signer) {
          await ctx.authenticator.refuseRequest(
            authOf(c).principal.keyId,
            'NOT_AUTHORIZED',
            'a signer submits its own checkpoints only',
            c.info,
          );
        }
        await pipeline.acceptCheckpoint(signer, c.body);
        return {};
      },
    ),

    // ---------------------------------------------------------------- offline signers (issue 13)
    route(
      {
        method: 'GET',
        url: '/v1/intents/:id/offline-job',
        operationId: 'exportOfflineJob',
        summary:
          "The job file of an offline signer (cold storage): its queued job for this intent, as the signer feed would hand it, with the governance entries after `after` up to the job's head. Admins and operators; reading it changes nothing.",
        auth: 'member',
        query: {
          signer: stringParam(primitives.id, 'the offline signer whose job this is'),
          after: intParam(
            -1,
            Number.MAX_SAFE_INTEGER,
            "governance entries after this seq (the signer's own head, see custos signer status; default -1: from the genesis)",
          ),
        },
        success: 200,
        successDescription:
          '{"v":1,"kind":"custos.offline-job","job":SignerJob,"governance":[SignedGovernanceEntry]}',
        errors: ['NOT_FOUND', 'CONFLICT', 'NOT_AUTHORIZED', 'INVALID_VALUE'],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        await mayCarry(ctx, principal, state, c.info);
        const signer = c.query.signer;
        if (signer === undefined)
          throw new CustosError('MISSING_FIELD', 'signer: the offline signer is required');
        const id = idParam(c);
        if (!/^[0-9a-f]{64}$/.test(id)) throw new CustosError('NOT_FOUND', 'no such intent');
        const file = await exportJob(store, id as Digest, signer, c.query.after ?? -1);
        await ctx.audit.append({
          actor: principal.keyId,
          event: 'signing.exported',
          subject: id,
          digest: toHex(sha256(utf8(canonicalize(file)))) as Digest,
        });
        return { body: file };
      },
    ),
    route(
      {
        method: 'POST',
        url: '/v1/offline/results',
        operationId: 'importOfflineResult',
        summary:
          "An offline signer's result file, posted by the admin or operator who carried it: the receipt is checked by the signer's identity key as for an online signer, then the pipeline combines and broadcasts as usual.",
        auth: 'member',
        body: offlineResultFile,
        bodyLimit: large,
        success: 200,
        successDescription: '{"job","intent","signer","outcome","code","status"}',
        errors: ['NOT_FOUND', 'CONFLICT', 'BAD_SIGNATURE', 'NOT_AUTHORIZED', 'INVALID_VALUE'],
      },
      async (c) => {
        const { principal, state } = authOf(c);
        await mayCarry(ctx, principal, state, c.info);
        const answer = await importResult(store, pipeline, c.body);
        await ctx.audit.append({
          actor: principal.keyId,
          event: 'signing.imported',
          subject: answer.intent,
          digest: receiptDigest(c.body.result.receipt),
        });
        return { body: answer };
      },
    ),

    // ---------------------------------------------------------------- audit
    route(
      {
        method: 'GET',
        url: '/v1/audit',
        operationId: 'auditLog',
        summary: 'Audit entries from a seq, with the head (verify them with core verifyAuditChain).',
        auth: 'any',
        query: {
          from: intParam(0, Number.MAX_SAFE_INTEGER, 'first seq (default 0)'),
          limit: intParam(1, 1000, 'at most this many (default 1000)'),
          wait: intParam(
            0,
            limits.maxWaitMs,
            `with no entry from \`from\` yet, wait up to this many ms for one (at most ${limits.maxWaitMs})`,
          ),
        },
        success: 200,
        successDescription: '{"entries":[AuditEntry],"head"}',
        errors: [],
      },
      async (c) => {
        const from = c.query.from ?? 0;
        const limit = c.query.limit ?? 1000;
        let entries = await store.audit.range(from, limit);
        const wait = c.query.wait ?? 0;
        if (entries.length === 0 && wait > 0) {
          // A follower's long poll: answered when this process commits an entry, or at the next
          // look at the table (entries other coordinators append), until `wait` has passed.
          const gone = new AbortController();
          const onClose = (): void => gone.abort();
          c.reply.raw.once('close', onClose);
          const signal = AbortSignal.any([gone.signal, ctx.closing]);
          const end = Date.now() + wait;
          try {
            for (let round = 0; round < 10_000 && entries.length === 0 && !signal.aborted; round++) {
              const left = end - Date.now();
              if (left <= 0) break;
              await store.audit.appended(Math.min(left, store.notices.pollMs), signal);
              entries = await store.audit.range(from, limit);
            }
          } finally {
            c.reply.raw.off('close', onClose);
          }
        }
        return { body: { entries: entries.slice(0, limit), head: await store.audit.head() } };
      },
    ),
    route(
      {
        method: 'GET',
        url: '/v1/audit/checkpoints',
        operationId: 'auditCheckpoints',
        summary: "Signers' checkpoints of the audit log.",
        auth: 'any',
        success: 200,
        successDescription: '{"checkpoints":[SignedCheckpoint]}',
        errors: [],
      },
      async () => ({ body: { checkpoints: await store.audit.checkpoints() } }),
    ),
  ];
}

/** Job files are carried by admins and operators (members with the `operator` role); anyone else is refused, audited. */
async function mayCarry(
  ctx: RouteContext,
  principal: Principal,
  state: AuthContext['state'],
  info: RequestInfo,
): Promise<void> {
  if (principal.kind === 'member' && mayCarryJobs(state, principal.member, ctx.clock())) return;
  await ctx.authenticator.refuseRequest(
    principal.keyId,
    'NOT_AUTHORIZED',
    'only an admin or an operator carries job files for offline signers',
    info,
  );
}

function signerOf(p: Principal): string {
  if (p.kind !== 'signer') throw new CustosError('NOT_AUTHORIZED', 'this call is for signers');
  return p.signer;
}

/**
 * POST /v1/governance/genesis: allowed only while the store holds no
 * governance; the request must be signed by an admin device the posted
 * genesis lists (there are no other keys yet).
 */
async function storeGenesis(ctx: RouteContext, c: Call<unknown, Record<never, never>>): Promise<Answer> {
  const limit = ctx.limits.maxLargeBodyBytes;
  const signed = decodeBody(signedGovernanceEntry, c.raw, limit);
  if ((await ctx.store.governance.head()) !== null) {
    throw new CustosError('CONFLICT', 'this coordinator already holds an organization');
  }
  const principal = await ctx.authenticator.authenticateWith(c.req, c.raw, genesisKeys(signed.entry));
  const r = await initOrganization(ctx.store, signed, {
    now: ctx.clock,
    actor: principal.keyId,
    ...(ctx.org === undefined ? {} : { org: ctx.org }),
  });
  if (!r.created) throw new CustosError('CONFLICT', 'this coordinator already holds an organization');
  return { body: { status: 'applied', seq: 0, org: r.org } };
}

/** Admin devices listed in a genesis (the only keys there are before it is stored). */
function genesisKeys(entry: GovernanceEntry): KeyResolver {
  const refusal = refuse('NOT_AUTHORIZED', 'the genesis is stored by an admin device it lists');
  return (keyId) => {
    const m = /^member:([^/]+)\/([^/]+)$/.exec(keyId);
    if (entry.kind !== 'genesis' || m === null) return refusal;
    const member = entry.body.members.find((x) => x.id === m[1]);
    const device = member?.devices.find((d) => d.id === m[2]);
    if (member === undefined || !member.roles.includes(ADMIN_ROLE) || device?.kind !== 'ed25519')
      return refusal;
    return {
      ok: true,
      principal: { kind: 'member', keyId, member: member.id, device: device.id },
      publicKey: device.publicKey,
    };
  };
}
