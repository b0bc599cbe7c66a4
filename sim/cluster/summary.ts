/**
 * The figures of one simulated run, as the routing report prints them. TTFT is measured over requests that
 * arrived inside the measurement window; a request that had no first token when the simulation stopped counts
 * with the time it had waited by then (a lower bound, so an overloaded policy is never flattered by dropping
 * its worst requests). Load is each group's time-averaged outstanding requests: max over mean says how unevenly
 * the router spread the work.
 */
import type { ClusterSimResult } from './cluster-sim.ts';
import type { SimRequest, Workload } from './workload.ts';

export interface RunSummary {
  p50_ttft_s: number;
  p90_ttft_s: number;
  p99_ttft_s: number;
  output_tok_s: number;
  max_over_mean_load: number;
  measured_requests: number;
  /** Measured requests without a first token when the simulation stopped. */
  unfinished: number;
  refused: number;
  prefix_hit_rate: number;
  reasons: Record<string, number>;
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

function measured(req: SimRequest, w: Workload): boolean {
  return req.arrivalMs >= w.warmupMs && req.arrivalMs <= w.durationMs;
}

/** TTFTs (s) of the measured requests, ascending. */
export function measuredTtfts(r: ClusterSimResult, w: Workload): Float64Array {
  const out: number[] = [];
  for (const req of w.requests) {
    if (!measured(req, w) || r.refused[req.id] === 1) continue;
    const first = r.firstTokenMs[req.id] as number;
    out.push(((Number.isNaN(first) ? r.endMs : first) - req.arrivalMs) / 1000);
  }
  return Float64Array.from(out).sort();
}

export function summarize(r: ClusterSimResult, w: Workload): RunSummary {
  const ttfts = measuredTtfts(r, w);
  let unfinished = 0;
  let refused = 0;
  for (const req of w.requests) {
    if (!measured(req, w)) continue;
    if (r.refused[req.id] === 1) refused++;
    else if (Number.isNaN(r.firstTokenMs[req.id] as number)) unfinished++;
  }
  const loads = r.meanOutstanding;
  const mean = loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length);
  const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    p50_ttft_s: round(quantile(ttfts, 0.5)),
    p90_ttft_s: round(quantile(ttfts, 0.9)),
    p99_ttft_s: round(quantile(ttfts, 0.99)),
    output_tok_s: round(r.windowMs > 0 ? r.windowOutputTokens / (r.windowMs / 1000) : 0, 1),
    max_over_mean_load: round(mean > 0 ? Math.max(...loads) / mean : 1),
    measured_requests: ttfts.length,
    unfinished,
    refused,
    prefix_hit_rate: round(r.prefixQueryTokens > 0 ? r.prefixHitTokens / r.prefixQueryTokens : 0),
    reasons: Object.fromEntries([...r.reasons.entries()].sort((a, b) => b[1] - a[1])),
  };
}
