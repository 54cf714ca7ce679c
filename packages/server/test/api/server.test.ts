/**
 * `custos serve` (startServer) on SQLite and PostgreSQL, over real sockets:
 * it serves the API, and a shutdown loses no accepted request: requests in
 * flight when close() starts all complete with their normal answers, new
 * ones are turned away, then the pipeline stops and the database closes.
 * Also the environment it reads its configuration from.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOrg, type Org, type Person } from '@custos/test-support/org';
import { afterEach, describe, expect, it } from 'vitest';
import { readServerConfig, type ServerConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/connect.js';
import { Store } from '../../src/db/repository.js';
import { initOrganization } from '../../src/governance-view.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { type Backend, useBackends } from '../db/backends.js';
import { Client, send, unsigned } from './support/client.js';
import { makeApproval, makeIntent, RecordingNotifier, TEST_LIMITS } from './support/harness.js';
import { InertPipeline } from './support/inert-pipeline.js';

const { backends, postgres } = useBackends();
const dirs: string[] = [];
const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A database with the organization's genesis in it, and the server configuration pointing at it. */
async function prepared(backend: Backend, org: Org): Promise<ServerConfig> {
  const base: Omit<ServerConfig, 'sqlitePath'> = {
    host: '127.0.0.1',
    port: 0,
    chain: {},
    webhooks: [],
    logLevel: 'silent',
    limits: TEST_LIMITS,
  };
  let config: ServerConfig;
  if (backend.name === 'postgres') {
    config = { ...base, sqlitePath: 'unused', databaseUrl: await postgres.freshDatabase() };
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'custos-serve-'));
    dirs.push(dir);
    config = { ...base, sqlitePath: join(dir, 'coordinator.db') };
  }
  const db = await openDatabase(
    config.databaseUrl === undefined ? { sqlitePath: config.sqlitePath } : { url: config.databaseUrl },
  );
  await initOrganization(new Store(db), org.genesis);
  await db.close();
  return config;
}

function client(url: string, person: Person): Client {
  return new Client(
    { baseUrl: url },
    { keyId: `member:${person.id}/${person.device.id}`, secretKey: person.device.secretKey },
    Date.now,
  );
}

describe.each(backends)('startServer on $name', (backend) => {
  it('serves the API on a real socket and stops the pipeline and the database on close', async () => {
    const org = createOrg();
    const config = await prepared(backend, org);
    const pipeline = new InertPipeline();
    const server = await startServer(config, {
      createPipeline: () => pipeline,
      createNotifier: () => new RecordingNotifier(),
      handleSignals: false,
    });
    servers.push(server);
    expect(pipeline.started).toBe(true);
    expect((await send({ baseUrl: server.url }, unsigned('GET', '/v1/health'))).body).toEqual({
      status: 'ok',
    });
    const created = await client(server.url, org.requester).post('/v1/intents', makeIntent(org, Date.now()));
    expect(created.status).toBe(201);
    // Prometheus text at /metrics by default (CUSTOS_METRICS), counting what it served.
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain(
      'custos_http_requests_total{route="/v1/intents",method="POST",status="201"} 1',
    );
    await server.close();
    expect(pipeline.stopped).toBe(true);
    await expect(fetch(`${server.url}/v1/health`)).rejects.toThrow();
  });

  it('loses no accepted request on shutdown: those in flight finish normally, new ones are turned away', async () => {
    const org = createOrg();
    const config = await prepared(backend, org);
    const pipeline = new InertPipeline();
    const server = await startServer(config, {
      createPipeline: () => pipeline,
      createNotifier: () => new RecordingNotifier(),
      handleSignals: false,
    });
    servers.push(server);
    const [a1, a2] = org.approvers as [Person, Person];
    const ids: string[] = [];
    for (let n = 0; n < 3; n++) {
      const res = await client(server.url, org.requester).post('/v1/intents', makeIntent(org, Date.now()));
      const id = (res.body as { id: string }).id;
      ids.push(id);
      expect(
        (
          await client(server.url, a1).post(
            `/v1/intents/${id}/approvals`,
            makeApproval(id as never, a1, Date.now()),
          )
        ).status,
      ).toBe(200);
    }

    // Each second approval reaches the pipeline's hand-over and waits there; so does a wallet read.
    pipeline.hold();
    const inFlight = [
      ...ids.map((id) =>
        client(server.url, a2).post(`/v1/intents/${id}/approvals`, makeApproval(id as never, a2, Date.now())),
      ),
      client(server.url, org.watcher).get('/v1/wallets'),
    ];
    while (pipeline.waiting < inFlight.length) await new Promise((r) => setTimeout(r, 5));

    const closing = server.close();
    await new Promise((r) => setTimeout(r, 50));
    // A request arriving now is not accepted: refused connection, or 503 on a kept-alive one.
    const late = await client(server.url, org.watcher)
      .get('/v1/intents')
      .then((r) => r.status)
      .catch(() => 'refused');
    expect([503, 'refused']).toContain(late);
    expect(pipeline.stopped).toBe(false);

    pipeline.release();
    const answers = await Promise.all(inFlight);
    for (const a of answers.slice(0, 3)) {
      expect(a.status).toBe(200);
      expect(a.body).toMatchObject({ status: 'approved' });
    }
    expect(answers[3]?.status).toBe(200);
    await closing;
    expect(pipeline.stopped).toBe(true);
    expect([...pipeline.approved].sort()).toEqual([...ids].sort());
  });

  it('refuses to start without a chain node when no pipeline is given, and leaves the database closed', async () => {
    const org = createOrg();
    const config = await prepared(backend, org);
    await expect(startServer(config, { handleSignals: false })).rejects.toMatchObject({
      code: 'INVALID_VALUE',
      message: expect.stringContaining('BITCOIN_RPC_URL'),
    });
    // The database was closed again: it opens (on SQLite, a leftover connection would block this).
    const db = await openDatabase(
      config.databaseUrl === undefined ? { sqlitePath: config.sqlitePath } : { url: config.databaseUrl },
    );
    expect((await new Store(db).governance.head())?.digest).toBe(org.orgId);
    await db.close();
  });
});

describe('readServerConfig', () => {
  it('defaults to 127.0.0.1:8080 and a SQLite file', () => {
    expect(readServerConfig({})).toEqual({
      host: '127.0.0.1',
      port: 8080,
      sqlitePath: './custos.db',
      chain: {},
      webhooks: [],
      logLevel: 'info',
      metrics: true,
    });
  });

  it('reads the database, chain, org and webhooks, and secrets from files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custos-config-'));
    dirs.push(dir);
    await writeFile(join(dir, 'rpc'), 'hunter2hunter2\n');
    const config = readServerConfig({
      CUSTOS_HOST: '0.0.0.0',
      CUSTOS_PORT: '9000',
      DATABASE_URL: 'postgres://custos@db/custos',
      CUSTOS_ORG: 'ab'.repeat(32),
      BITCOIN_RPC_URL: 'http://127.0.0.1:18443',
      BITCOIN_RPC_USER: 'custos',
      BITCOIN_RPC_PASSWORD_FILE: join(dir, 'rpc'),
      CUSTOS_WEBHOOKS: JSON.stringify([
        { url: 'https://hooks.example/x', secret: 's'.repeat(16), events: ['frozen'] },
      ]),
    });
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      databaseUrl: 'postgres://custos@db/custos',
      org: 'ab'.repeat(32),
      chain: { rpcUrl: 'http://127.0.0.1:18443', rpcUser: 'custos', rpcPassword: 'hunter2hunter2' },
      webhooks: [{ url: 'https://hooks.example/x', secret: 's'.repeat(16), events: ['frozen'] }],
    });
  });

  it('reads the EVM chains of Safe wallets (CUSTOS_EVM_FILE, it holds the executor key) and names what is wrong without the key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custos-config-'));
    dirs.push(dir);
    const key = `0x${'ab'.repeat(32)}`;
    await writeFile(
      join(dir, 'evm.json'),
      JSON.stringify({ '31337': { rpcUrl: 'http://127.0.0.1:8545', executorKey: key } }),
    );
    expect(readServerConfig({ CUSTOS_EVM_FILE: join(dir, 'evm.json') }).evm).toEqual({
      '31337': { rpcUrl: 'http://127.0.0.1:8545', executorKey: key },
    });
    const bad = `0x${'cd'.repeat(31)}`;
    for (const [value, message] of [
      ['{', /CUSTOS_EVM is not JSON/],
      [JSON.stringify({ mainnet: {} }), /key "mainnet" is not a chain id/],
      [JSON.stringify({ '1': { rpcUrl: 'ws://x', executorKey: key } }), /\.1\.rpcUrl/],
      [JSON.stringify({ '1': { rpcUrl: 'http://x', executorKey: bad } }), /\.1\.executorKey/],
    ] as const) {
      expect(() => readServerConfig({ CUSTOS_EVM: value })).toThrow(message);
      try {
        readServerConfig({ CUSTOS_EVM: value });
      } catch (err) {
        expect(String((err as Error).message)).not.toContain(bad.slice(2));
      }
    }
  });

  it('reads the per-key rates from CUSTOS_MEMBER_RATE, CUSTOS_SIGNER_RATE and CUSTOS_ROLE_RATES, and refuses a malformed one by name', () => {
    expect(readServerConfig({}).limits).toBeUndefined();
    expect(
      readServerConfig({
        CUSTOS_MEMBER_RATE: '5/10',
        CUSTOS_SIGNER_RATE: '100/400',
        CUSTOS_ROLE_RATES: 'service=200/1000, payouts.eu=0.5/3',
      }).limits,
    ).toEqual({
      memberRate: { perSecond: 5, burst: 10 },
      signerRate: { perSecond: 100, burst: 400 },
      roleRates: { service: { perSecond: 200, burst: 1000 }, 'payouts.eu': { perSecond: 0.5, burst: 3 } },
    });
    for (const [name, value] of [
      ['CUSTOS_MEMBER_RATE', '20'],
      ['CUSTOS_MEMBER_RATE', '0/10'],
      ['CUSTOS_SIGNER_RATE', '50/0'],
      ['CUSTOS_SIGNER_RATE', '1e9/10'],
      ['CUSTOS_ROLE_RATES', 'service'],
      ['CUSTOS_ROLE_RATES', 'service=200/1000,service=1/1'],
      ['CUSTOS_ROLE_RATES', '=200/1000'],
    ] as const) {
      expect(() => readServerConfig({ [name]: value }), `${name}=${value}`).toThrow(name);
    }
  });

  it('serves /metrics unless CUSTOS_METRICS is off; its bearer token from CUSTOS_METRICS_TOKEN or a file, at least 16 characters', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custos-config-'));
    dirs.push(dir);
    await writeFile(join(dir, 'token'), 'scrape-token-0123456789\n');
    expect(readServerConfig({ CUSTOS_METRICS: 'off' }).metrics).toBe(false);
    expect(readServerConfig({ CUSTOS_METRICS_TOKEN_FILE: join(dir, 'token') })).toMatchObject({
      metrics: true,
      metricsToken: 'scrape-token-0123456789',
    });
    expect(() => readServerConfig({ CUSTOS_METRICS: 'yes' })).toThrow(/CUSTOS_METRICS must be on or off/);
    expect(() => readServerConfig({ CUSTOS_METRICS_TOKEN: 'short-token' })).toThrow(/CUSTOS_METRICS_TOKEN/);
    try {
      readServerConfig({ CUSTOS_METRICS_TOKEN: 'short-token' });
    } catch (err) {
      expect(String((err as Error).message)).not.toContain('short-token');
    }
  });

  it('names the variable that is wrong, never its value', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ CUSTOS_PORT: 'eighty' }, /CUSTOS_PORT/],
      [{ CUSTOS_ORG: 'not-a-digest' }, /CUSTOS_ORG/],
      [{ CUSTOS_WEBHOOKS: '{' }, /CUSTOS_WEBHOOKS/],
      [{ CUSTOS_WEBHOOKS: JSON.stringify([{ url: 'ftp://x', secret: 'short' }]) }, /CUSTOS_WEBHOOKS\[0\]/],
      [
        { CUSTOS_WEBHOOKS: JSON.stringify([{ url: 'https://x', secret: 'x'.repeat(16), events: ['nope'] }]) },
        /events/,
      ],
      [{ DATABASE_URL_FILE: '/nonexistent/custos-secret' }, /DATABASE_URL_FILE/],
    ];
    for (const [env, message] of cases) {
      expect(() => readServerConfig(env)).toThrow(message);
    }
  });
});
