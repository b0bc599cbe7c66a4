/**
 * Published vLLM operating points the simulator replays, each with its source, the vLLM version it was measured
 * on, the hardware setup and the workload of the benchmark script that produced it. `fit` points train the three
 * CPU-side parameters jointly; the others are predictions held out of the fit (or other figures of the same run
 * as a fit or held-out point, reported but not counted twice).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { groupMemory } from '../../common/hardware/group-memory.ts';
import { BUILTIN_MODELS } from '../../common/hardware/model-shape.ts';
import { CALIBRATION_DIR, loadCalibration } from '../../sim/engine/calibration.ts';
import type { CalibrationFile } from '../../sim/engine/model/latency-model.ts';
import type { ReplayResult, Workload } from './virtual-replay.ts';

export interface Setup {
  name: string;
  calibration: CalibrationFile;
  tp: number;
  fp8: boolean;
  kvBlocks: number;
}

export interface PublishedPoint {
  name: string;
  unit: string;
  published: number;
  source: string;
  vllmVersion: string;
  setup: Setup;
  workload: Workload;
  read(r: ReplayResult): number;
  role: 'fit' | 'held-out' | 'same-run';
}

/** vLLM 0.5.x defaults: 256 sequences; Llama 3.1's 128K context turns chunked prefill on at 512 tokens a step. */
const V05 = { maxNumSeqs: 256, maxNumBatchedTokens: 512 };

function kvBlocks(model: string, gpu: string, tp: number, fp8: boolean, gpuMemoryUtilization = 0.9): number {
  const shape = BUILTIN_MODELS[model];
  const g = lookupGpu(gpu);
  if (!shape || !g) throw new Error(`unknown model ${model} or GPU ${gpu}`);
  return groupMemory(
    shape,
    g,
    { tp, pp: 1, dtype: fp8 ? 'fp8' : 'bf16', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
    { gpuMemoryUtilization, ...V05 },
  ).kvBlocks;
}

/** Lambda's 405B ShareGPT run: every request's input and output tokens (the JSON file says where it comes from). */
function lambdaShareGpt320() {
  const run = JSON.parse(
    readFileSync(join(import.meta.dirname, 'data', 'lambda-405b-fp8-8xh100-sharegpt-320.json'), 'utf8'),
  ) as {
    input_lens: number[];
    output_lens: number[];
    output_throughput: number;
    mean_ttft_ms: number;
    mean_tpot_ms: number;
    request_throughput: number;
  };
  // One request came back with an empty text (0 tokens counted by the client): the engine still sampled one.
  const lengths = run.input_lens.map((input, i): [number, number] => [
    input,
    Math.max(1, run.output_lens[i] ?? 1),
  ]);
  return { run, lengths };
}

export function publishedPoints(): PublishedPoint[] {
  const cal = (model: string, tp: number, gpu: string) =>
    loadCalibration(CALIBRATION_DIR, model, tp, gpu).data;
  const h100_405b: Setup = {
    name: '405B FP8 TP8 H100',
    calibration: cal('llama-3.1-405b', 8, 'h100-80g'),
    tp: 8,
    fp8: true,
    kvBlocks: kvBlocks('llama-3.1-405b', 'h100-80g', 8, true),
  };
  const h100_8b: Setup = {
    name: '8B BF16 TP1 H100',
    calibration: cal('llama-3.1-8b', 1, 'h100-80g'),
    tp: 1,
    fp8: false,
    kvBlocks: kvBlocks('llama-3.1-8b', 'h100-80g', 1, false),
  };
  // No MI300X measurements: the H200 kernels scaled by HBM bandwidth (4.8 TB/s H200 / 5.3 TB/s MI300X), an
  // approximation for memory-bound decode stated as such (what the engine simulator does on MI300X).
  const mi300x_405b: Setup = {
    name: '405B FP8 TP8 MI300X (H200 kernels x 4.8/5.3)',
    calibration: cal('llama-3.1-405b', 8, 'mi300x-192g'),
    tp: 8,
    fp8: true,
    kvBlocks: kvBlocks('llama-3.1-405b', 'mi300x-192g', 8, true),
  };

  // Lambda ran --gpu-memory-utilization 0.95 and --max-model-len 2000, which in vLLM 0.5.4 leaves chunked prefill
  // off with 2048 tokens a step (prefill-only steps); the replay runs V1's chunked prefill at that budget.
  const h100_405b_lambda: Setup = {
    ...h100_405b,
    name: '405B FP8 TP8 H100 (gpu-memory-utilization 0.95)',
    kvBlocks: kvBlocks('llama-3.1-405b', 'h100-80g', 8, true, 0.95),
  };
  const lambda = lambdaShareGpt320();
  const lambdaWorkload: Workload = {
    arrival: { kind: 'all-at-once', requests: lambda.lengths.length },
    inputTokens: 0,
    outputTokens: 0,
    lengths: lambda.lengths,
    maxNumSeqs: 256,
    maxNumBatchedTokens: 2048,
    kvBlocks: h100_405b_lambda.kvBlocks,
  };
  const lambdaSource =
    'Lambda "LLMs inference benchmarks, using vLLM, on Lambda Cloud" (LambdaLabsML/vllm-benchmark, 2024-08-19 run: Hermes-3-Llama-3.1-405B-FP8, benchmark_serving.py, 320 ShareGPT prompts at request rate inf, every request\'s lengths replayed)';

  const blog0723 =
    'vLLM blog 2024-07-23 "Announcing Llama 3.1 Support in vLLM" (benchmark_throughput, 1024 in / 128 out; the published token rates imply 1023 in / 103.4 out per request, replayed as 1023 / 103)';
  const throughput405b: Workload = {
    arrival: { kind: 'all-at-once', requests: 1000 },
    inputTokens: 1023,
    outputTokens: 103,
    ...V05,
    kvBlocks: h100_405b.kvBlocks,
  };
  const oci =
    'Oracle Cloud blog "Serving Llama 3.1 405B model with AMD MI300X GPUs" (2024, vLLM benchmark_latency.py, 128 in / 128 out, batch B)';
  const latencyB = (batch: number, role: PublishedPoint['role'], published: number): PublishedPoint => ({
    name: `405B FP8 8xMI300X benchmark_latency batch ${batch}: output throughput`,
    unit: 'tok/s',
    published,
    source: oci,
    vllmVersion: 'ROCm vLLM, 2024 (0.5.x/0.6.x era, not stated)',
    setup: mi300x_405b,
    workload: {
      arrival: { kind: 'all-at-once', requests: batch },
      inputTokens: 128,
      outputTokens: 128,
      ...V05,
      kvBlocks: mi300x_405b.kvBlocks,
    },
    read: (r) => r.outputTokensPerS,
    role,
  });
  return [
    {
      name: '405B FP8 8xH100 offline throughput: requests/s',
      unit: 'req/s',
      published: 2.82,
      source: blog0723,
      vllmVersion: '0.5.3',
      setup: h100_405b,
      workload: throughput405b,
      read: (r) => r.requestsPerS,
      role: 'fit',
    },
    {
      name: '405B FP8 8xH100 offline throughput: input tokens/s (same run)',
      unit: 'tok/s',
      published: 2884.86,
      source: blog0723,
      vllmVersion: '0.5.3',
      setup: h100_405b,
      workload: throughput405b,
      read: (r) => r.inputTokensPerS,
      role: 'same-run',
    },
    {
      name: '405B FP8 8xH100 offline throughput: output tokens/s (same run)',
      unit: 'tok/s',
      published: 291.53,
      source: blog0723,
      vllmVersion: '0.5.3',
      setup: h100_405b,
      workload: throughput405b,
      read: (r) => r.outputTokensPerS,
      role: 'same-run',
    },
    {
      name: '8B BF16 1xH100 light load: time per output token',
      unit: 'ms',
      published: 13,
      source:
        'vLLM blog 2024-09-05 "vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction" (describing v0.5.x on Llama 3 8B, 1xH100)',
      vllmVersion: '0.5.3',
      setup: h100_8b,
      workload: {
        arrival: { kind: 'closed-loop', concurrency: 1, requests: 4 },
        inputTokens: 512,
        outputTokens: 256,
        ...V05,
        kvBlocks: h100_8b.kvBlocks,
      },
      read: (r) => r.meanTpotMs,
      role: 'fit',
    },
    latencyB(1, 'fit', 36),
    latencyB(8, 'held-out', 258),
    latencyB(32, 'held-out', 798),
    latencyB(64, 'held-out', 1184),
    latencyB(128, 'held-out', 1585),
    latencyB(256, 'fit', 1846),
    {
      name: '405B FP8 8xH100 ShareGPT 320 prompts at once: output throughput',
      unit: 'tok/s',
      published: lambda.run.output_throughput,
      source: lambdaSource,
      vllmVersion: '0.5.4',
      setup: h100_405b_lambda,
      workload: lambdaWorkload,
      read: (r) => r.outputTokensPerS,
      role: 'held-out',
    },
    {
      name: '405B FP8 8xH100 ShareGPT 320 prompts at once: requests/s (same run)',
      unit: 'req/s',
      published: lambda.run.request_throughput,
      source: lambdaSource,
      vllmVersion: '0.5.4',
      setup: h100_405b_lambda,
      workload: lambdaWorkload,
      read: (r) => r.requestsPerS,
      role: 'same-run',
    },
    {
      name: '405B FP8 8xH100 ShareGPT 320 prompts at once: mean TTFT (same run)',
      unit: 'ms',
      published: lambda.run.mean_ttft_ms,
      source: lambdaSource,
      vllmVersion: '0.5.4',
      setup: h100_405b_lambda,
      workload: lambdaWorkload,
      read: (r) => r.meanTtftMs,
      role: 'same-run',
    },
    {
      name: '405B FP8 8xH100 ShareGPT 320 prompts at once: mean TPOT (same run)',
      unit: 'ms',
      published: lambda.run.mean_tpot_ms,
      source: lambdaSource,
      vllmVersion: '0.5.4',
      setup: h100_405b_lambda,
      workload: lambdaWorkload,
      read: (r) => r.meanTpotMs,
      role: 'same-run',
    },
  ];
}
