/**
 * A small benchmark harness: run a function for a fixed time, report
 * operations per second and latency percentiles. Figures are only compared
 * with ceilings measured in the same run, so the ratios mean something on a
 * noisy two-core machine.
 */
export interface Measurement {
  readonly name: string;
  readonly ops: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export function measure(
  name: string,
  fn: () => void,
  opts: { seconds?: number; warmup?: number } = {},
): Measurement {
  for (let i = 0; i < (opts.warmup ?? 20); i++) fn();
  const budget = (opts.seconds ?? 1.5) * 1000;
  const samples: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < budget) {
    const t = performance.now();
    fn();
    now = performance.now();
    samples.push(now - t);
  }
  return summarize(name, samples, (now - start) / 1000);
}

export async function measureAsync(
  name: string,
  fn: () => Promise<void>,
  opts: { seconds?: number; warmup?: number } = {},
): Promise<Measurement> {
  for (let i = 0; i < (opts.warmup ?? 5); i++) await fn();
  const budget = (opts.seconds ?? 1.5) * 1000;
  const samples: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < budget) {
    const t = performance.now();
    await fn();
    now = performance.now();
    samples.push(now - t);
  }
  return summarize(name, samples, (now - start) / 1000);
}

export function summarize(name: string, samples: number[], seconds: number): Measurement {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    name,
    ops: samples.length,
    seconds,
    perSecond: samples.length / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

export interface Row {
  readonly suite: string;
  readonly figure: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

export function printTable(rows: readonly Row[]): void {
  const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(3));
  const w = Math.max(...rows.map((r) => `${r.suite}: ${r.figure}`.length));
  for (const r of rows) {
    const label = `${r.suite}: ${r.figure}`.padEnd(w);
    process.stdout.write(
      `${label}  ${fmt(r.value).padStart(12)} ${r.unit}${r.note ? `  (${r.note})` : ''}\n`,
    );
  }
}
