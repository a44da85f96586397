// Shared benchmark harness: timing, medians, and the two output formats of ../shared/BENCH.md.
//
// A benchmark calls `measure()` for each (bench, case, impl): `runs` timed runs after a warm-up,
// and the median is kept. Results go through `report()`: a readable table by default, or one JSON
// object per line (and nothing else on stdout) with --json.

export interface Result {
  bench: string;
  case: string;
  impl: string;
  value: number;
  unit: string;
}

export const json = process.argv.includes('--json');
const results: Result[] = [];

/** Prints progress to stderr (never stdout, which --json keeps for results). */
export function note(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * Times `fn` (which does `work` units per call) for about `ms` milliseconds per run, `runs` times
 * after one warm-up run, and returns the median rate in units per second.
 */
export function rate(fn: () => void, work: number, opts: { ms?: number; runs?: number } = {}): number {
  const ms = opts.ms ?? 300;
  const runs = opts.runs ?? 5;
  const once = (): number => {
    let calls = 0;
    const t0 = process.hrtime.bigint();
    let t = t0;
    const end = t0 + BigInt(ms * 1e6);
    while (t < end) {
      for (let i = 0; i < 16; i++) fn();
      calls += 16;
      t = process.hrtime.bigint();
    }
    return (calls * work) / (Number(t - t0) / 1e9);
  };
  once();
  const xs: number[] = [];
  for (let r = 0; r < runs; r++) xs.push(once());
  return median(xs);
}

export function record(r: Result): void {
  results.push(r);
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** Prints the readable table (nothing with --json, where lines were already printed). */
export function report(): void {
  if (json) return;
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const k = `${r.bench}\t${r.case}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const rows: string[][] = [['bench', 'case', 'impl', 'value', 'unit', 'ratio']];
  for (const rs of groups.values()) {
    const base = rs[rs.length - 1]!;
    for (const r of rs) {
      const ratio = rs.length > 1 && base.value > 0 ? `${(r.value / base.value).toFixed(2)}x` : '';
      rows.push([r.bench, r.case, r.impl, fmt(r.value), r.unit, r === base ? '(baseline)' : ratio]);
    }
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(w[i]!)).join('  '));
}

function fmt(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}
