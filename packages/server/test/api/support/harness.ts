/**
 * A coordinator under test: core's fixture organization (admins, a
 * requester, approvers, a watcher and a signer, each with a real Ed25519
 * key), a fresh database on the backend under test, the real app from
 * createCoordinator with its genesis stored by initOrganization, a clock the
 * test moves, an InertPipeline and a RecordingNotifier. Clients sign their
 * requests with the members' real device keys.
 *
 * The clock is shared by the store (received times: governance delays count
 * from them) and the coordinator (signature windows, expiry, the policy
 * preview), as they share one clock in production.
 */
import { randomBytes } from 'node:crypto';
import {
  type Approval,
  type AuditEntry,
  approvalDigest,
  buildEntry,
  type Digest,
  type GovernanceEntryOf,
  type GovernanceState,
  type Intent,
  intentDigest,
  type LaterKind,
  type Millis,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
  signDigest,
  toHex,
} from '@custos/core';
import {
  COLD_STORAGE,
  createOrg,
  DAY,
  type DeviceKey,
  HOUR,
  type Org,
  type OrgOptions,
  type Person,
  signBy,
  T0,
} from '@custos/test-support/org';
import { afterEach } from 'vitest';
import { type Coordinator, createCoordinator } from '../../../src/app.js';
import type { CoordinatorLimits } from '../../../src/config.js';
import type { NotificationEvent, Notifier } from '../../../src/contracts.js';
import type { Store } from '../../../src/db/repository.js';
import { initOrganization } from '../../../src/governance-view.js';
import type { Backend, Fresh } from '../../db/backends.js';
import { Client, type Target } from './client.js';
import { InertPipeline } from './inert-pipeline.js';

export { COLD_STORAGE, DAY, HOUR, T0 };
export const MINUTE = 60_000;

/** A real Notifier that keeps what it is told (the webhook outbox is another module's). */
export class RecordingNotifier implements Notifier {
  readonly events: { event: NotificationEvent; data: Record<string, unknown> }[] = [];
  async emit(event: NotificationEvent, data: Record<string, unknown>): Promise<void> {
    this.events.push({ event, data });
  }
  of(event: NotificationEvent): Record<string, unknown>[] {
    return this.events.filter((e) => e.event === event).map((e) => e.data);
  }
}

/** Limits for tests: high rate limits (floods are sent on purpose), no background sweep. */
export const TEST_LIMITS: Partial<CoordinatorLimits> = {
  memberRate: { perSecond: 1000, burst: 100_000 },
  signerRate: { perSecond: 1000, burst: 100_000 },
  refusals: { perKey: 1000, total: 10_000, windowMs: 60_000 },
  sweepIntervalMs: 0,
};

export interface Harness {
  readonly org: Org;
  readonly clock: { now: Millis };
  readonly fresh: Fresh;
  readonly store: Store;
  readonly coordinator: Coordinator;
  readonly pipeline: InertPipeline;
  readonly notifier: RecordingNotifier;
  readonly target: Target;
  /** A client signing as `person` with its first device (or `device`). */
  as(person: Person, device?: DeviceKey): Client;
  /** A client signing as the fixture's signer. */
  signer(): Client;
  /** A signed intent from the requester (fields overridable). */
  intent(o?: Partial<Intent> & { by?: Person; key?: DeviceKey }): SignedIntent;
  /** A signed approval of `intent` by `by`. */
  approval(intent: Digest, by: Person, o?: Partial<Approval> & { key?: DeviceKey }): SignedApproval;
  /** The current verified state (as the coordinator sees it). */
  state(): Promise<GovernanceState>;
  /** The next governance entry after the current head, signed by `by`. */
  entry<K extends LaterKind>(
    kind: K,
    body: GovernanceEntryOf<K>['body'],
    by: readonly (Person | DeviceKey)[],
  ): Promise<SignedGovernanceEntry>;
  /** Proposes and applies an entry with a full quorum (first two admins); fails the test otherwise. */
  govern<K extends LaterKind>(kind: K, body: GovernanceEntryOf<K>['body']): Promise<void>;
  /** Every audit entry, in order. */
  audit(): Promise<AuditEntry[]>;
  /** Audit entries with this event. */
  events(event: string): Promise<AuditEntry[]>;
  /** Another coordinator on the same database (a peer Store on PostgreSQL), sharing the pipeline. */
  peer(): Promise<Coordinator>;
}

export interface HarnessOptions {
  readonly org?: OrgOptions;
  readonly limits?: Partial<CoordinatorLimits>;
}

/** Coordinators to close after each test (call at the top level of a test file, after useBackends). */
export function useHarness(): (backend: Backend, opts?: HarnessOptions) => Promise<Harness> {
  const open: Coordinator[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  return async (backend, opts = {}) => {
    const org = createOrg(opts.org ?? {});
    const clock = { now: T0 + MINUTE };
    const now = (): Millis => clock.now;
    const fresh = await backend.fresh({ now });
    const store = fresh.store;
    const pipeline = new InertPipeline();
    const notifier = new RecordingNotifier();
    const limits = { ...TEST_LIMITS, ...(opts.limits ?? {}) };
    await initOrganization(store, org.genesis, { now });
    const make = async (s: Store): Promise<Coordinator> => {
      const c = await createCoordinator({ store: s, pipeline, notifier, clock: now, limits });
      open.push(c);
      return c;
    };
    const coordinator = await make(store);
    const target: Target = { app: coordinator.app };
    let peerIndex = 0;

    const h: Harness = {
      org,
      clock,
      fresh,
      store,
      coordinator,
      pipeline,
      notifier,
      target,
      as(person, device = person.device) {
        return new Client(
          target,
          { keyId: `member:${person.id}/${device.id}`, secretKey: device.secretKey },
          now,
        );
      },
      signer() {
        return new Client(
          target,
          { keyId: `signer:${org.signer.record.id}`, secretKey: org.signer.secretKey },
          now,
        );
      },
      intent: (o = {}) => makeIntent(org, clock.now, o),
      approval: (intent, by, o = {}) => makeApproval(intent, by, clock.now, o),
      state: () => coordinator.governance.current(),
      async entry(kind, body, by) {
        return signBy(buildEntry(await h.state(), kind, body, clock.now), by);
      },
      async govern(kind, body) {
        const signed = await h.entry(kind, body, org.admins.slice(0, org.quorum));
        const res = await h.as(org.admins[0] as Person).post('/v1/governance/proposals', signed);
        if (res.status !== 201 || (res.body as { status?: unknown }).status !== 'applied') {
          throw new Error(`governance ${kind} was not applied: ${res.status} ${JSON.stringify(res.body)}`);
        }
      },
      async audit() {
        return [...(await store.audit.range(0, 10_000))];
      },
      async events(event) {
        return (await h.audit()).filter((e) => e.event === event);
      },
      async peer() {
        peerIndex++;
        return make(fresh.peer(peerIndex));
      },
    };
    return h;
  };
}

/** A signed intent of `org` from its requester (or `by`), created just before `now`, valid for an hour. */
export function makeIntent(
  org: Org,
  now: Millis,
  o: Partial<Intent> & { by?: Person; key?: DeviceKey } = {},
): SignedIntent {
  const { by: who, key, ...rest } = o;
  const by = who ?? org.requester;
  const device = key ?? by.device;
  const body: Intent = {
    v: 1,
    org: org.orgId,
    wallet: org.wallet.id,
    chain: org.wallet.chain,
    asset: 'BTC',
    amount: '10000' as Intent['amount'],
    to: COLD_STORAGE,
    requester: by.id,
    device: device.id,
    nonce: toHex(randomBytes(16)) as Intent['nonce'],
    createdAt: now - 1000,
    expiresAt: now + HOUR,
    ...rest,
  };
  return { intent: body, signature: signDigest(device.secretKey, intentDigest(body)) };
}

/** A signed approval of `intent` by `by` (its first device, or `key`), made just before `now`. */
export function makeApproval(
  intent: Digest,
  by: Person,
  now: Millis,
  o: Partial<Approval> & { key?: DeviceKey } = {},
): SignedApproval {
  const { key, ...rest } = o;
  const device = key ?? by.device;
  const a: Approval = {
    v: 1,
    intent,
    approver: by.id,
    device: device.id,
    decision: 'approve',
    at: now - 500,
    expiresAt: now + HOUR,
    ...rest,
  };
  return { approval: a, signature: signDigest(device.secretKey, approvalDigest(a)) };
}

/** The status and code of an answer, for one-line assertions. */
export function outcome(res: { status: number; body: unknown }): { status: number; code: string | null } {
  const e = (res.body as { error?: { code?: unknown } } | null)?.error;
  return { status: res.status, code: typeof e?.code === 'string' ? e.code : null };
}
