/** What a workload hands the cluster simulator: requests in arrival order, each prompt as content segments. */
import type { Segment } from './workloads/prompt-segments.ts';

export interface SimRequest {
  /** Dense index 0..n-1 in arrival order. */
  id: number;
  arrivalMs: number;
  tenant: string;
  segments: readonly Segment[];
  promptTokens: number;
  outputTokens: number;
  /** The content key of the answer: its tokens are tokenOf(outputKey, i), so a next turn that quotes it hits. */
  outputKey: number;
}

export interface Workload {
  name: string;
  requests: SimRequest[];
  /** When arrivals stop (ms): the end of the measurement window. */
  durationMs: number;
  /** Arrivals before this are warm-up and not measured (ms). */
  warmupMs: number;
}

/** Sorts by arrival and renumbers ids densely (generators that interleave sessions build out of order). */
export function inArrivalOrder(requests: Omit<SimRequest, 'id'>[]): SimRequest[] {
  return requests
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.arrivalMs - b.r.arrivalMs || a.i - b.i)
    .map(({ r }, id) => ({ ...r, id }));
}
