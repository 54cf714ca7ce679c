/**
 * Debian's Chromium driven by playwright-core (no browser download: the
 * executable is the system's, installed by .ci/run). Launched with the flags
 * that keep it from reaching anything but the console under test.
 */
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CUSTOS_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}

/** The console's origin for a coordinator on 127.0.0.1: WebAuthn refuses IP addresses as RP IDs. */
export function consoleOrigin(coordinatorUrl: string): string {
  return coordinatorUrl.replace('://127.0.0.1:', '://localhost:');
}
