/**
 * A real `custos signer run` process polling a fake coordinator that serves
 * the world's governance: the set-up the signer process tests share.
 */
import { rmSync } from 'node:fs';
import {
  type KeystoreInfo,
  type RunningSigner,
  runSigner,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import type { World } from '@custos/test-support/world';
import { type FakeCoordinator, startFakeCoordinator } from './fake-coordinator.js';

/** Starts the fake coordinator with `world.governance` and signer-1 against it; resolves once it has started. */
export async function startStand(
  dir: string,
  keystore: KeystoreInfo,
  world: World,
): Promise<{ coordinator: FakeCoordinator; signer: RunningSigner }> {
  const coordinator = await startFakeCoordinator(new Map([['signer-1', keystore.identityKey]]));
  coordinator.setGovernance(world.governance);
  const signer = runSigner(writeConfig(dir, 'signer-1', coordinator.url, world.org.orgId));
  await waitForOutput(signer, 'signer.started');
  return { coordinator, signer };
}

/** Stops what {@link startStand} started (either may be missing after a failed set-up) and removes `dir`. */
export async function stopStand(
  signer: RunningSigner | undefined,
  coordinator: FakeCoordinator | undefined,
  dir: string,
): Promise<void> {
  signer?.child.kill('SIGTERM');
  await signer?.exited;
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
}
