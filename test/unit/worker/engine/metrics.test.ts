import { describe, expect, it } from 'vitest';
import { versionAtLeast } from '../../../../worker/engine/metric-names.ts';
import { parsePrometheusText, parseSampleLine, readEngineLoad } from '../../../../worker/engine/metrics.ts';

const CURRENT = `
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 2.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 4.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.25
vllm:prefix_cache_queries_total{engine="0",model_name="llama"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="llama"} 400.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="llama"} 0.0
`;

const OLD = `
vllm:num_requests_running{model_name="llama"} 1
vllm:num_requests_waiting{model_name="llama"} 0
vllm:gpu_cache_usage_perc{model_name="llama"} 0.75
vllm:gpu_prefix_cache_queries_total{model_name="llama"} 20
vllm:gpu_prefix_cache_hits_total{model_name="llama"} 5
`;

describe('engine metrics', () => {
  it('reads current vLLM names, summing counts and averaging KV use over engine cores', () => {
    expect(readEngineLoad(CURRENT)).toEqual({
      running: 5,
      waiting: 4,
      kvCacheUsage: 0.375,
      prefixCacheQueries: 1000,
      prefixCacheHits: 400,
    });
  });

  it('reads the older names (gpu_cache_usage_perc, gpu_prefix_cache_*)', () => {
    expect(readEngineLoad(OLD)).toEqual({
      running: 1,
      waiting: 0,
      kvCacheUsage: 0.75,
      prefixCacheQueries: 20,
      prefixCacheHits: 5,
    });
  });

  it('prefers the current name when both are exposed', () => {
    const both = 'vllm:kv_cache_usage_perc 0.1\nvllm:gpu_cache_usage_perc 0.9\n';
    expect(readEngineLoad(both).kvCacheUsage).toBe(0.1);
  });

  it('leaves readings undefined when no known name is present', () => {
    expect(readEngineLoad('some_other_metric 1\n')).toEqual({
      running: undefined,
      waiting: undefined,
      kvCacheUsage: undefined,
      prefixCacheQueries: undefined,
      prefixCacheHits: undefined,
    });
  });

  it('parses labels holding spaces, braces and escaped quotes, timestamps and special values', () => {
    expect(parseSampleLine('m{a="x } y",b="q\\"}"} 12.5 1700000000000')).toEqual({ name: 'm', value: 12.5 });
    expect(parseSampleLine('m 1e3')).toEqual({ name: 'm', value: 1000 });
    expect(parseSampleLine('m +Inf')?.value).toBe(Number.POSITIVE_INFINITY);
    expect(parseSampleLine('m{a="unterminated} 1')).toBeUndefined();
    expect(parseSampleLine('m notanumber')).toBeUndefined();
    expect(parseSampleLine('{a="b"} 1')).toBeUndefined();
  });

  it('skips comments and malformed lines and keeps only wanted names', () => {
    const parsed = parsePrometheusText('# c\nbad line here\na 1\nb 2\na{x="1"} 3\n', new Set(['a']));
    expect([...parsed.entries()]).toEqual([['a', [1, 3]]]);
  });

  it.each([
    ['0.10.2', true],
    ['0.11.0', true],
    ['1.0.0rc1', true],
    ['0.10.1', false],
    ['0.9.12', false],
    ['0.10.2.dev5+g123', true],
  ])('versionAtLeast(%s, 0.10.2) = %s', (v, expected) => {
    expect(versionAtLeast(v, '0.10.2')).toBe(expected);
  });
});
