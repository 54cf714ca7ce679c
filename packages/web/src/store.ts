/**
 * What this browser remembers: the pinned genesis digest and the passkeys
 * enrolled here (their public parts; the private keys never leave the
 * authenticator). Kept in localStorage of the console's origin. The pin is
 * the root of every verification: it is typed by the member, never taken
 * from the coordinator.
 */
import type { EnrolledPasskey } from './passkey.js';

export interface LocalDevice {
  readonly member: string;
  readonly device: string;
  readonly passkey: EnrolledPasskey;
}

const GENESIS = 'custos.genesis';
const DEVICES = 'custos.devices';

export function pinnedGenesis(): string | null {
  const g = localStorage.getItem(GENESIS);
  return g !== null && /^[0-9a-f]{64}$/.test(g) ? g : null;
}

export function pinGenesis(digest: string): void {
  localStorage.setItem(GENESIS, digest);
}

export function localDevices(): LocalDevice[] {
  try {
    const v = JSON.parse(localStorage.getItem(DEVICES) ?? '[]') as unknown;
    return Array.isArray(v) ? (v as LocalDevice[]) : [];
  } catch {
    return [];
  }
}

export function saveDevice(d: LocalDevice): void {
  const rest = localDevices().filter((x) => !(x.member === d.member && x.device === d.device));
  localStorage.setItem(DEVICES, JSON.stringify([...rest, d]));
}
