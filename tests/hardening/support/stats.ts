/**
 * Percentiles of measured durations, for the hardening scenarios' reports.
 *
 * @module
 */

/** The count, median, 99th percentile and maximum of some durations. */
export interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** Percentiles of `values` (ms), rounded to 0.1 ms. */
export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    n: sorted.length,
    p50: round(at(0.5)),
    p99: round(at(0.99)),
    max: round(sorted.at(-1) ?? NaN),
  };
}
