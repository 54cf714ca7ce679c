/** What a signed-in console holds: the session's API, the device, the pinned genesis and the verified state. */
import type { GovernanceState } from '@custos/core';
import type { Api } from './api.js';
import type { LocalDevice } from './store.js';

export interface Signed {
  readonly api: Api;
  readonly device: LocalDevice;
  readonly genesis: string;
  readonly state: GovernanceState;
  readonly entries: number;
}

export function errorText(err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') {
    return `${err.code}: ${(err as { message?: string }).message ?? ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}
