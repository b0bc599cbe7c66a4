/**
 * The engine's Prometheus metrics under vLLM V1's names, labels and bucket lists (VLLM.md), counted from the
 * simulated events, rendered in the text exposition format.
 */
import { Histogram, ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS } from './histogram.ts';

export interface GaugeReadings {
  running: number;
  waiting: number;
  kvUsage: number;
}

export class EngineMetrics {
  promptTokens = 0;
  generationTokens = 0;
  preemptions = 0;
  prefixQueries = 0;
  prefixHits = 0;
  readonly success: Record<'stop' | 'length' | 'abort', number> = { stop: 0, length: 0, abort: 0 };
  readonly ttft = new Histogram(
    'vllm:time_to_first_token_seconds',
    'Histogram of time to first token in seconds.',
    TTFT_BUCKETS,
  );
  readonly itl = new Histogram(
    'vllm:inter_token_latency_seconds',
    'Histogram of inter-token latency in seconds.',
    ITL_BUCKETS,
  );
  readonly e2e = new Histogram(
    'vllm:e2e_request_latency_seconds',
    'Histogram of e2e request latency in seconds.',
    REQUEST_LATENCY_BUCKETS,
  );
  readonly queue = new Histogram(
    'vllm:request_queue_time_seconds',
    'Histogram of time spent in WAITING phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  readonly prefill = new Histogram(
    'vllm:request_prefill_time_seconds',
    'Histogram of time spent in PREFILL phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );
  readonly decode = new Histogram(
    'vllm:request_decode_time_seconds',
    'Histogram of time spent in DECODE phase for request.',
    REQUEST_LATENCY_BUCKETS,
  );

  render(modelName: string, g: GaugeReadings): string {
    const labels = `engine="0",model_name="${modelName.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
    const gauge = (name: string, help: string, v: number) =>
      `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}{${labels}} ${v}`;
    const counter = (name: string, help: string, v: number) =>
      `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name}{${labels}} ${v}`;
    const success = Object.entries(this.success)
      .map(([r, v]) => `vllm:request_success_total{${labels},finished_reason="${r}"} ${v}`)
      .join('\n');
    return `${[
      gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', g.running),
      gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', g.waiting),
      gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', g.kvUsage),
      counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.', this.promptTokens),
      counter(
        'vllm:generation_tokens_total',
        'Number of generation tokens processed.',
        this.generationTokens,
      ),
      counter(
        'vllm:num_preemptions_total',
        'Cumulative number of preemption from the engine.',
        this.preemptions,
      ),
      counter(
        'vllm:prefix_cache_queries_total',
        'Prefix cache queries, in terms of number of queried tokens.',
        this.prefixQueries,
      ),
      counter(
        'vllm:prefix_cache_hits_total',
        'Prefix cache hits, in terms of number of cached tokens.',
        this.prefixHits,
      ),
      `# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter\n${success}`,
      this.ttft.render(labels),
      this.itl.render(labels),
      this.e2e.render(labels),
      this.queue.render(labels),
      this.prefill.render(labels),
      this.decode.render(labels),
    ].join('\n')}\n`;
  }
}
