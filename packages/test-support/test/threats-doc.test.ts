import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  collect,
  issue8ItemsOf,
  renderThreats,
  THREATS_DOC,
  testNames,
  threatsOf,
  unplaced,
} from '../src/threats-doc.js';

describe('docs/threats.md', () => {
  it('is current: its lists of tests are what npm run docs:threats writes from the test names', () => {
    const current = readFileSync(THREATS_DOC, 'utf8');
    const tests = collect();
    expect(unplaced(current, tests)).toEqual([]);
    expect(renderThreats(current, tests)).toBe(current);
  });

  it('reads every form of a test name that names a threat line or an issue 8 item', () => {
    expect(threatsOf('THREATS 6 (DMM): the intent as signed')).toEqual([6]);
    expect(threatsOf('THREATS 4-5: revoked devices')).toEqual([4, 5]);
    expect(threatsOf('THREATS 7 and 13: approvals')).toEqual([7, 13]);
    expect(threatsOf('signatures (THREATS 9, 12, 4, 5)')).toEqual([9, 12, 4, 5]);
    expect(threatsOf('a relay (THREATS 7 / 23)')).toEqual([7, 23]);
    expect(threatsOf('no threat here, docs/threats.md is a file')).toEqual([]);
    expect(issue8ItemsOf('change beyond the gap limit (issue 8, item 4)')).toEqual([4]);
    expect(issue8ItemsOf('issue 8 item 7: a receipt')).toEqual([7]);
    expect(issue8ItemsOf('Issue 8, items 1 and 3')).toEqual([1, 3]);
  });

  it('takes names from it, test and describe calls in any quotes', () => {
    const src = [
      "describe('THREATS 1: a', () => {",
      '  it("THREATS 2: b", () => {});',
      "  it('THREATS 3: the signer\\'s own clock', async () => {});",
      '  test(`THREATS 4: d`, () => {});',
      '});',
    ].join('\n');
    expect(testNames(src)).toEqual([
      'THREATS 1: a',
      'THREATS 2: b',
      "THREATS 3: the signer's own clock",
      'THREATS 4: d',
    ]);
  });
});
