/**
 * Real `custos signer run` processes polling a fake coordinator that serves
 * the world's governance: the set-up the signer process tests share. Each
 * signer has its own keystore, configuration, database and HTTP connection.
 */
import { rmSync } from 'node:fs';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  type KeystoreInfo,
  type RunningSigner,
  runSigner,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import type { World } from '@custos/test-support/world';

/**
 * Starts the fake coordinator with `world.governance` and one signer process
 * per keystore, `signer-1`, `signer-2`, ... in order; resolves once each has
 * started. `signer` is the first of `signers`; `configs` their configuration
 * files, in the same order.
 */
export async function startStand(
  dir: string,
  keystores: KeystoreInfo | readonly KeystoreInfo[],
  world: World,
): Promise<{
  coordinator: FakeCoordinator;
  signer: RunningSigner;
  signers: RunningSigner[];
  configs: string[];
}> {
  const list = Array.isArray(keystores) ? keystores : [keystores as KeystoreInfo];
  const ids = list.map((_, i) => `signer-${i + 1}`);
  const coordinator = await startFakeCoordinator(new Map(list.map((k, i) => [ids[i]!, k.identityKey])));
  coordinator.setGovernance(world.governance);
  const configs = ids.map((id) => writeConfig(dir, id, coordinator.url, world.org.orgId));
  const signers = configs.map((config) => runSigner(config));
  await Promise.all(signers.map((s) => waitForOutput(s, 'signer.started')));
  return { coordinator, signer: signers[0]!, signers, configs };
}

/** Stops what {@link startStand} started (any of it may be missing after a failed set-up) and removes `dir`. */
export async function stopStand(
  signers: RunningSigner | readonly (RunningSigner | undefined)[] | undefined,
  coordinator: FakeCoordinator | undefined,
  dir: string,
): Promise<void> {
  const list = (Array.isArray(signers) ? signers : [signers]) as (RunningSigner | undefined)[];
  for (const s of list) s?.child.kill('SIGTERM');
  await Promise.all(list.map((s) => s?.exited));
  await coordinator?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
