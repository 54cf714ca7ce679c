/**
 * axe-core (Deque's accessibility engine) run in the page under test. The
 * source is evaluated through the DevTools Protocol, which the page's CSP
 * does not govern: the console itself is not changed to allow it. Returns
 * the serious and critical violations, with the first offending node of each.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  readonly id: string;
  readonly impact: string;
  readonly target: string;
}

export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(AXE);
  return (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, target: String(v.nodes[0] && v.nodes[0].target) })))`)) as AxeViolation[];
}
