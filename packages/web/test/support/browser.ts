/**
 * Debian's Chromium driven by playwright-core (no browser download: the
 * executable is the system's, installed by .ci/run). Launched with the flags
 * that keep it from reaching anything but the console under test.
 */
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

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

/**
 * A member's own browser profile: a context with a platform passkey
 * authenticator from the DevTools Protocol (CTAP2, resident keys, user
 * verification), the console opened at `origin` with `genesis` pinned.
 * `errors` collects the page's uncaught errors.
 */
export async function passkeyPage(
  browser: Browser,
  origin: string,
  genesis: string,
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${origin}/`);
  await page.getByLabel('Pinned genesis digest').fill(genesis);
  await page.getByRole('button', { name: 'Pin' }).click();
  await page.getByText('pinned', { exact: true }).waitFor();
  return { context, page, errors };
}
