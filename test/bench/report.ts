/** Figures for the benchmark's table: medians, CPU time of processes, fixed-width rows, ratio checks. */
import { readFileSync } from 'node:fs';

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** User + system CPU time of a process (all its threads) in ms, from /proc; NaN when it is gone. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime (fields 14 and 15)
  } catch {
    return NaN;
  }
}

export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Right-aligned columns after a left-aligned first one. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface RatioCheck {
  readonly what: string;
  readonly value: number;
  readonly op: '>=' | '<=';
  readonly target: number;
}

export function ratioRows(checks: readonly RatioCheck[]): string[][] {
  return checks.map((c) => {
    const met = c.op === '>=' ? c.value >= c.target : c.value <= c.target;
    return [c.what, fmt(c.value, 3), `${c.op === '>=' ? '≥' : '≤'} ${c.target.toFixed(2)}`, Number.isFinite(c.value) ? (met ? 'met' : 'MISSED') : 'n/a'];
  });
}
