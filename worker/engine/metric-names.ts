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
