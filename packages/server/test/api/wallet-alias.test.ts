/**
 * Issue 8, item 2, at the HTTP API: a second wallet over the same keys and
 * threshold (another descriptor text) is refused WALLET_ALIAS, with a full
 * admin quorum, and the refusal is an audit entry; nothing is stored. A
 * wallet over other keys is still added. A genesis holding two aliases is
 * refused on an empty coordinator.
 */
import { descriptorKeyOf, formatDescriptor, walletFromKeys } from '@custos/bitcoin';
import { buildGenesis, type BitcoinWallet as Wallet } from '@custos/core';
import { type Person, signBy } from '@custos/test-support/org';
import { signers as seedSigners } from '@custos/test-support/psbt-fixtures';
import { HDKey } from '@scure/bip32';
import { describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import { useBackends } from '../db/backends.js';
import { Client } from './support/client.js';
import { type Harness, outcome, RecordingNotifier, TEST_LIMITS, useHarness } from './support/harness.js';
import { InertPipeline } from './support/inert-pipeline.js';

const { backends } = useBackends();
const harness = useHarness();

const TESTNET = { private: 0x04358394, public: 0x043587cf };
const ORIGIN_KEYS = seedSigners.map((k) => descriptorKeyOf(k, 'regtest'));

function walletOf(id: string, descriptor: string): Wallet {
  return {
    id,
    label: `Wallet ${id}`,
    chain: 'bitcoin:regtest',
    assets: ['BTC'],
    kind: 'bitcoin-wsh-sortedmulti',
    descriptor,
  };
}

const MAIN = walletOf('btc-main', formatDescriptor(walletFromKeys(2, ORIGIN_KEYS, 'regtest')));

/** The same three keys: reordered; and the first one re-serialized with other depth and parent metadata. */
function aliases(): { reordered: string; reserialized: string } {
  const [a, b, c] = ORIGIN_KEYS as [
    (typeof ORIGIN_KEYS)[0],
    (typeof ORIGIN_KEYS)[0],
    (typeof ORIGIN_KEYS)[0],
  ];
  const node = HDKey.fromExtendedKey(a.xpub, TESTNET);
  const forged = new HDKey({
    versions: TESTNET,
    depth: 2,
    index: 0x80000009,
    parentFingerprint: 0x0badf00d,
    chainCode: node.chainCode!,
    publicKey: node.publicKey!,
  });
  return {
    reordered: formatDescriptor(walletFromKeys(2, [c, a, b], 'regtest')),
    reserialized: formatDescriptor(
      walletFromKeys(
        2,
        [{ fingerprint: '0badf00d', path: '5h/9h', xpub: forged.publicExtendedKey }, b, c],
        'regtest',
      ),
    ),
  };
}

function admins(h: Harness): Person[] {
  return h.org.admins.slice(0, h.org.quorum) as Person[];
}

describe.each(backends)('wallet aliases on $name', (backend) => {
  it('wallet.add over the same keys in another text is WALLET_ALIAS with a full quorum; audited, nothing stored', async () => {
    const h = await harness(backend, { org: { wallet: MAIN } });
    for (const [name, descriptor] of Object.entries(aliases())) {
      expect(descriptor).not.toBe(MAIN.descriptor);
      const signed = await h.entry('wallet.add', walletOf(`btc-${name}`, descriptor), admins(h));
      const res = await h.as(admins(h)[0]!).post('/v1/governance/proposals', signed);
      expect(outcome(res)).toEqual({ status: 422, code: 'WALLET_ALIAS' });
      expect((res.body as { error: { message: string } }).error.message).toContain('btc-main');
    }
    expect((await h.store.governance.head())?.seq).toBe(0);
    expect(await h.store.proposals.list()).toEqual([]);
    const refused = await h.events('governance.refused');
    expect(refused).toHaveLength(2);
    expect(refused.map((e) => e.subject)).toEqual(['1', '1']);
    expect([...(await h.state()).wallets.keys()]).toEqual(['btc-main']);
  });

  it('a wallet over other keys is still added', async () => {
    const h = await harness(backend, { org: { wallet: MAIN } });
    const other = seedSigners.map((k) =>
      descriptorKeyOf({ ...k, path: `${k.path}/7h`, account: k.account.deriveChild(0x80000007) }, 'regtest'),
    );
    const desc = formatDescriptor(walletFromKeys(2, other, 'regtest'));
    await h.govern('wallet.add', walletOf('btc-other', desc));
    expect([...(await h.state()).wallets.keys()]).toEqual(['btc-main', 'btc-other']);
  });

  it('an empty coordinator refuses a genesis holding two aliases of one wallet', async () => {
    const h = await harness(backend, { org: { wallet: MAIN } });
    const fresh = await backend.fresh({ now: () => h.clock.now });
    const c = await createCoordinator({
      store: fresh.store,
      pipeline: new InertPipeline(),
      notifier: new RecordingNotifier(),
      clock: () => h.clock.now,
      limits: TEST_LIMITS,
    });
    try {
      const body = { ...h.org.body, wallets: [MAIN, walletOf('btc-twin', aliases().reordered)] };
      const genesis = signBy(buildGenesis(body, h.clock.now - 1000), admins(h));
      const admin = admins(h)[0]!;
      const client = new Client(
        { app: c.app },
        { keyId: `member:${admin.id}/${admin.device.id}`, secretKey: admin.device.secretKey },
        () => h.clock.now,
      );
      const res = await client.post('/v1/governance/genesis', genesis);
      expect(outcome(res)).toEqual({ status: 422, code: 'WALLET_ALIAS' });
      expect(await fresh.store.governance.head()).toBeNull();
    } finally {
      await c.close();
    }
  });
});
