/**
 * The oldest vLLM whose CLI, SSE format (return_token_ids) and metrics corral has been checked against. An
 * engine reporting an older GET /version still runs, with a warning in the log: the failure is likely, not certain.
 */
export const MIN_SUPPORTED_VLLM = '0.10.2';

/** Compares dotted versions numerically (`0.10.2` > `0.9.9`); pre-release suffixes are ignored. */
export function versionAtLeast(version: string, min: string): boolean {
  const parse = (v: string) =>
    v
      .split(/[.+-]/)
      .slice(0, 3)
      .map((x) => Number.parseInt(x, 10) || 0);
  const a = parse(version);
  const b = parse(min);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/**
 * The one place that knows vLLM's metric names across versions (VLLM.md). The V1 engine renamed
 * `vllm:gpu_cache_usage_perc` to `vllm:kv_cache_usage_perc` and `vllm:gpu_prefix_cache_*` to
 * `vllm:prefix_cache_*`; clusters in the field run both, so each reading lists every name it may have,
 * newest first. Counters may be exposed with or without the `_total` suffix depending on the client library.
 */

export type EngineReading = 'running' | 'waiting' | 'kvCacheUsage' | 'prefixCacheQueries' | 'prefixCacheHits';

/** How series with different labels (one per engine core under data parallelism) combine. */
export type Aggregation = 'sum' | 'mean';

export const METRIC_NAMES: Readonly<
  Record<EngineReading, { names: readonly string[]; aggregate: Aggregation }>
> = {
  running: { names: ['vllm:num_requests_running'], aggregate: 'sum' },
  waiting: { names: ['vllm:num_requests_waiting'], aggregate: 'sum' },
  // A 0..1 fraction in both versions, per engine core: the mean is the node's fill level.
  kvCacheUsage: { names: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'], aggregate: 'mean' },
  prefixCacheQueries: {
    names: [
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_queries',
      'vllm:gpu_prefix_cache_queries_total',
      'vllm:gpu_prefix_cache_queries',
    ],
    aggregate: 'sum',
  },
  prefixCacheHits: {
    names: [
      'vllm:prefix_cache_hits_total',
      'vllm:prefix_cache_hits',
      'vllm:gpu_prefix_cache_hits_total',
      'vllm:gpu_prefix_cache_hits',
    ],
    aggregate: 'sum',
  },
};
