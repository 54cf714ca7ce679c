/**
 * SharedRead: a burst of callers costs two reads, and no caller gets a result
 * read before it called (what was written before a request is in its answer).
 */
import { describe, expect, it } from 'vitest';
import { SharedRead } from '../src/shared-read.js';

describe('SharedRead', () => {
  it('callers arriving during a read share the next one, which starts after they called', async () => {
    let value = 0;
    const starts: number[] = [];
    const gates: (() => void)[] = [];
    const shared = new SharedRead<number, number>(
      async (min) => {
        starts.push(min);
        const seen = value;
        await new Promise<void>((r) => gates.push(r));
        return seen;
      },
      (a, b) => Math.min(a, b),
    );
    const first = shared.read(5);
    value = 1; // written after the first read began: the first read does not see it
    const burst = [shared.read(7), shared.read(3), shared.read(9)];
    expect(starts).toEqual([5]);
    gates.shift()!();
    expect(await first).toBe(0);
    await new Promise((r) => setTimeout(r, 0));
    // One read for the whole burst, with the earliest argument, started after the burst arrived.
    expect(starts).toEqual([5, 3]);
    gates.shift()!();
    expect(await Promise.all(burst)).toEqual([1, 1, 1]);
    // Idle again: the next caller starts its own read at once.
    const alone = shared.read(4);
    expect(starts).toEqual([5, 3, 4]);
    gates.shift()!();
    expect(await alone).toBe(1);
  });

  it('a failed read fails its callers only; the queued read still runs', async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    const shared = new SharedRead<undefined, number>(
      async () => {
        calls++;
        if (calls === 1) {
          await new Promise<void>((r) => {
            release = r;
          });
          throw new Error('connection lost');
        }
        return calls;
      },
      () => undefined,
    );
    const first = shared.read(undefined);
    const second = shared.read(undefined);
    release!();
    await expect(first).rejects.toThrow('connection lost');
    expect(await second).toBe(2);
  });
});
