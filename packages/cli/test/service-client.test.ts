/**
 * The service client (issue 13): a member whose device key lives on a
 * server, an exchange backend, signs its intents and its HTTP requests with
 * `@custos/cli/client` and a DeviceSigner. The example of docs/api.md
 * "Service client" is support/service-client-example.ts, word for word (the
 * type check compiles it); here it runs against a real coordinator over a
 * socket (SQLite, the real HTTP API and policy preview; the signing pipeline
 * after "approved" is a stand-in that records the hand-over):
 * - the backend's sealed key file opens with its password and nothing else;
 * - a payout under the automated rule is approved when posted, with no
 *   approval, and the coordinator checked the backend's own signatures;
 * - a payout over a limit is held with LIMIT_EXCEEDED, nothing stored;
 * - a DeviceSigner whose key store holds another key (an HSM slot or KMS key
 *   id gone wrong) is caught before anything is sent.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type Amount,
  buildGenesis,
  CustosError,
  type DeviceSigner,
  type Digest,
  deviceKeyId,
  type GenesisBody,
  generateEd25519,
  governanceDigest,
  type Hex,
  type Member,
  memoryDeviceSigner,
  type Policy,
  type SignedCheckpoint,
  type SignerResult,
  signGovernanceEntry,
} from '@custos/core';
import {
  type Coordinator,
  createCoordinator,
  initOrganization,
  type Notifier,
  openDatabase,
  type SigningPipeline,
  Store,
} from '@custos/server';
import { createOrg, DAY, EXCHANGE_DEPOSIT, HOUR, type Org } from '@custos/test-support/org';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustosClient, openSealedDeviceKey, writeSealedDeviceKey } from '../src/client.js';
import { connect, payOut } from './support/service-client-example.js';

/** The exchange's hot wallet, as the documented example names it. */
const WALLET_ID = 'hot';
const ROOT = resolve(new URL('../../..', import.meta.url).pathname);
const PASSWORD = 'the backend key file password, from a secret store';

/** The signing pipeline after "approved": recorded here; the signers' side has its own tests. */
class RecordingPipeline implements SigningPipeline {
  readonly approved: Digest[] = [];
  async onApproved(id: Digest): Promise<void> {
    this.approved.push(id);
  }
  async jobsFor() {
    return { jobs: [], checkpoint: null };
  }
  async acceptResult(_signer: string, _result: SignerResult): Promise<void> {}
  async acceptCheckpoint(_signer: string, _checkpoint: SignedCheckpoint): Promise<void> {}
  async wallets() {
    return [];
  }
  async chainStatus() {
    return { ok: true, height: 1 };
  }
  start(): void {}
  async stop(): Promise<void> {}
}

const silent: Notifier = { emit: async () => undefined };

let dir: string;
let keyFile: string;
let org: Org;
let orgId: Digest;
let coordinator: Coordinator;
let store: Store;
let close: () => Promise<void>;
let url: string;
const pipeline = new RecordingPipeline();

/** The hot wallet's customer payouts: up to 0.002 BTC each, no approval, 0.0015 BTC a day per customer. */
function exchangePolicy(base: Policy): Policy {
  return {
    ...base,
    rules: [
      {
        id: 'payouts',
        match: {
          destination: { kind: 'any' },
          wallets: [WALLET_ID],
          assets: ['BTC'],
          maxAmount: '200000' as Amount,
          requesterRoles: ['service'],
        },
        action: 'allow',
        approvals: [],
      },
      ...base.rules,
    ],
    limits: [
      ...base.limits,
      { id: 'per-customer', scope: 'destination', asset: 'BTC', windowMs: DAY, max: '150000' as Amount },
    ],
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-service-client-'));
  keyFile = join(dir, 'backend.key');
  // What `custos keys new` writes, here for the service member; low scrypt cost for test speed only.
  const pub = await writeSealedDeviceKey(keyFile, 'exchange-backend', 'backend-1', PASSWORD, { logN: 12 });
  org = createOrg({
    wallet: {
      id: WALLET_ID,
      label: 'Hot wallet',
      chain: 'bitcoin:regtest',
      assets: ['BTC'],
      kind: 'bitcoin-wsh-sortedmulti',
      descriptor: 'wsh(sortedmulti(2,...))',
    },
  });
  const backend: Member = {
    id: pub.member,
    name: 'Exchange backend',
    roles: ['requester', 'service'],
    devices: [{ id: pub.device, kind: 'ed25519', publicKey: pub.publicKey }],
  };
  const body: GenesisBody = {
    ...org.body,
    members: [...org.body.members, backend],
    policy: exchangePolicy(org.body.policy),
  };
  const entry = buildGenesis(body, Date.now() - HOUR);
  const genesis = signGovernanceEntry(
    entry,
    org.admins.slice(0, org.quorum).map((a) => a.device.signer),
  );
  orgId = governanceDigest(entry);
  const db = await openDatabase({ sqlitePath: join(dir, 'coordinator.db') });
  store = new Store(db);
  await initOrganization(store, genesis);
  coordinator = await createCoordinator({
    store,
    pipeline,
    notifier: silent,
    limits: { sweepIntervalMs: 0 },
  });
  url = await coordinator.app.listen({ host: '127.0.0.1', port: 0 });
  close = async () => {
    await coordinator.close();
    await db.close();
  };
}, 60_000);

afterAll(async () => {
  await close?.();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('docs/api.md "Service client"', () => {
  it('shows support/service-client-example.ts word for word', () => {
    const example = readFileSync(new URL('./support/service-client-example.ts', import.meta.url), 'utf8');
    const doc = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Service client'));
    expect(section).toContain(`\`\`\`ts\n${example}\`\`\``);
  });
});

describe('the service client against a real coordinator', () => {
  it('opens the sealed key file with its password only (BAD_PASSWORD otherwise, the secret never shown)', async () => {
    const signer = await openSealedDeviceKey(keyFile, PASSWORD);
    expect(signer).toMatchObject({ member: 'exchange-backend', device: 'backend-1' });
    expect(deviceKeyId(signer)).toBe('member:exchange-backend/backend-1');
    await expect(openSealedDeviceKey(keyFile, 'not the password')).rejects.toMatchObject({
      code: 'BAD_PASSWORD',
    });
    // The names are bound to the box: a file edited to speak for another member does not open.
    const swapped = join(dir, 'swapped.key');
    const file = JSON.parse(readFileSync(keyFile, 'utf8'));
    writeFileSync(swapped, JSON.stringify({ ...file, public: { ...file.public, member: 'admin-1' } }));
    await expect(openSealedDeviceKey(swapped, PASSWORD)).rejects.toMatchObject({ code: 'BAD_PASSWORD' });
    expect(readFileSync(keyFile, 'utf8')).not.toContain(PASSWORD);
  });

  it('the documented example: a payout under the automated rule is approved when posted, with no approval', async () => {
    const client = await connect(url, keyFile, PASSWORD);
    const paid = await payOut(client, orgId, EXCHANGE_DEPOSIT, 100_000n);
    expect(paid).toMatchObject({ status: 'approved' });
    const id = (paid as { id: string }).id as Digest;
    expect(pipeline.approved).toContain(id);
    // The same client reads it back, its GET signed by the same device.
    const view = await client.intent(id);
    expect(view).toMatchObject({ status: 'approved', approvals: [] });
    expect(view.intent.intent).toMatchObject({ requester: 'exchange-backend', device: 'backend-1' });
    const created = (await store.audit.range(0, 1000)).find(
      (e) => e.event === 'intent.created' && e.subject === id,
    );
    expect(created?.actor).toBe('member:exchange-backend/backend-1');
  });

  it('the documented example: a payout over the per-customer limit is held with LIMIT_EXCEEDED, nothing stored', async () => {
    const client = await connect(url, keyFile, PASSWORD);
    const before = (await store.intents.list()).intents.length;
    expect(await payOut(client, orgId, EXCHANGE_DEPOSIT, 180_000n)).toEqual({ held: 'LIMIT_EXCEEDED' });
    expect((await store.intents.list()).intents).toHaveLength(before);
  });

  it('takes any DeviceSigner (an HSM or KMS adapter); one whose key store holds another key is caught before anything is sent', async () => {
    const real = await openSealedDeviceKey(keyFile, PASSWORD);
    // An adapter: only `sign` reaches the key store.
    const adapter: DeviceSigner = {
      member: real.member,
      device: real.device,
      publicKey: real.publicKey,
      sign: (bytes) => real.sign(bytes),
    };
    const through = new CustosClient({ baseUrl: url, signer: adapter });
    const paid = await through.submitTransfer({
      org: orgId,
      wallet: WALLET_ID,
      chain: 'bitcoin:regtest',
      asset: 'BTC',
      amount: '1000',
      to: EXCHANGE_DEPOSIT,
    });
    expect(paid.status).toBe('approved');

    const other = memoryDeviceSigner({
      member: real.member,
      device: real.device,
      secretKey: generateEd25519().secretKey,
    });
    const misconfigured: DeviceSigner = { ...adapter, sign: (bytes) => other.sign(bytes) };
    const before = (await store.audit.range(0, 10_000)).length;
    const wrong = new CustosClient({ baseUrl: url, signer: misconfigured });
    await expect(
      wrong.submitTransfer({
        org: orgId,
        wallet: WALLET_ID,
        chain: 'bitcoin:regtest',
        asset: 'BTC',
        amount: '1000',
        to: EXCHANGE_DEPOSIT,
      }),
    ).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    await expect(wrong.intents({})).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    // Nothing reached the coordinator: no refused request in its audit log.
    expect((await store.audit.range(0, 10_000)).length).toBe(before);
  });

  it('refuses to sign an intent for another requester with the device (NOT_AUTHORIZED), a caller mistake', async () => {
    const client = await connect(url, keyFile, PASSWORD);
    expect(client).toBeInstanceOf(CustosClient);
    const { signIntentWithDevice } = await import('@custos/core');
    const signer = await openSealedDeviceKey(keyFile, PASSWORD);
    const err = await signIntentWithDevice(signer, {
      v: 1,
      org: orgId,
      wallet: WALLET_ID,
      chain: 'bitcoin:regtest',
      asset: 'BTC',
      amount: '1000' as Amount,
      to: EXCHANGE_DEPOSIT,
      requester: 'requester-1',
      device: 'requester-1-d1',
      nonce: '00'.repeat(16) as Hex,
      createdAt: Date.now(),
      expiresAt: Date.now() + HOUR,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CustosError);
    expect((err as CustosError).code).toBe('NOT_AUTHORIZED');
  });
});
