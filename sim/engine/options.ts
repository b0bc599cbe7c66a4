/**
 * The simulator's command line, parsed like `vllm serve MODEL [flags]` (Python argparse: `--flag value` and
 * `--flag=value`, unknown flags rejected with exit code 2), then compiled into validated options. Simulator-only
 * knobs are `--sim-*` flags, each also readable from the environment as CORRAL_SIM_* (e.g. CORRAL_SIM_TTFT_MS), so
 * a deployment can set them without changing the engine's arguments; a flag wins over the environment.
 */
import type { FieldError } from '../../common/errors.ts';
import { GPU_IDS, lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { defaultSchedulerLimits } from '../../common/hardware/group-memory.ts';
import { BLOCK_SIZE } from '../../common/hardware/memory.ts';

type Kind = 'int' | 'float' | 'string' | 'bool';

/** vLLM flags corral (and people) pass; accepted so a simulated launch uses the same command line as a real one. */
const VLLM_FLAGS: Record<string, Kind> = {
  host: 'string',
  port: 'int',
  'served-model-name': 'string',
  'tensor-parallel-size': 'int',
  'pipeline-parallel-size': 'int',
  'data-parallel-size': 'int',
  'max-model-len': 'int',
  'max-num-seqs': 'int',
  'max-num-batched-tokens': 'int',
  'gpu-memory-utilization': 'float',
  'api-key': 'string',
  quantization: 'string',
  dtype: 'string',
  'kv-cache-dtype': 'string',
  'scheduling-policy': 'string',
  seed: 'int',
  'block-size': 'int',
  'swap-space': 'float',
  'distributed-executor-backend': 'string',
  nnodes: 'int',
  'node-rank': 'int',
  'master-addr': 'string',
  'master-port': 'int',
  headless: 'bool',
  'enable-prefix-caching': 'bool',
  'no-enable-prefix-caching': 'bool',
  'enable-chunked-prefill': 'bool',
  'enable-request-id-headers': 'bool',
  'enforce-eager': 'bool',
  'trust-remote-code': 'bool',
  'disable-log-stats': 'bool',
  'otlp-traces-endpoint': 'string',
  'uvicorn-log-level': 'string',
  'generation-config': 'string',
};

/** Simulator-only knobs (also CORRAL_SIM_<NAME> in the environment). */
const SIM_FLAGS: Record<string, Kind> = {
  'sim-startup-ms': 'int',
  'sim-load-gbps': 'float',
  'sim-time-scale': 'float',
  'sim-ttft-ms': 'float',
  'sim-itl-ms': 'float',
  'sim-seed': 'int',
  'sim-output': 'string',
  'sim-eos-prob': 'float',
  'sim-kv-tokens': 'int',
  'sim-gpu-type': 'string',
  'sim-join-timeout-ms': 'int',
  'sim-fail-start': 'bool',
  'sim-calibration': 'string',
  'sim-crash-after-tokens': 'int',
  'sim-crash-at-ms': 'int',
  'sim-hang-after-tokens': 'int',
  'sim-error-rate-503': 'float',
  'sim-error-rate-429': 'float',
};

const FLAGS: Record<string, Kind> = { ...VLLM_FLAGS, ...SIM_FLAGS };

/** vLLM's CacheConfig BlockSize literal: argparse offers these as the choices of --block-size. */
export const VLLM_BLOCK_SIZES: readonly number[] = [1, 8, 16, 32, 64, 128, 256];

/** Other spellings of simulator flags (the issue's `--time-scale`). */
const ALIASES: Record<string, string> = { 'time-scale': 'sim-time-scale' };

export type OutputMode = 'random' | 'echo';

export interface EngineSimOptions {
  model: string;
  servedModelName: string;
  host: string;
  port: number;
  tensorParallelSize: number;
  pipelineParallelSize: number;
  maxModelLen: number;
  maxNumSeqs: number;
  /** The per-step token budget (chunked prefill). */
  maxNumBatchedTokens: number;
  enablePrefixCaching: boolean;
  gpuMemoryUtilization: number;
  apiKey: string | undefined;
  schedulingPolicy: 'fcfs' | 'priority';
  headless: boolean;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  joinTimeoutMs: number;
  /** Whole start-up in simulated ms, replacing the one computed from weight bytes and --sim-load-gbps. */
  startupMs: number | undefined;
  /** Weight loading bandwidth per GPU, GB/s. */
  loadGBps: number;
  /** Simulated time runs this many times faster than wall time. */
  timeScale: number;
  kvCacheDtype: 'bf16' | 'fp8';
  /** Tokens per KV block (--block-size): the KV cache's granularity and the prefix cache's. */
  blockSize: number;
  ttftMs: number;
  itlMs: number;
  /** --sim-ttft-ms or --sim-itl-ms was given: fixed step times, even where a calibration exists. */
  fixedLatency: boolean;
  seed: number;
  output: OutputMode;
  /** Probability that a sampled token is end-of-text (when ignore_eos is false and min_tokens are out). */
  eosProb: number;
  /** KV cache size in tokens, replacing the one computed from GPU memory (common/hardware). */
  kvTokens: number | undefined;
  /** Start-up ends with vLLM's `Engine core initialization failed` and exit 1 instead of serving. */
  failStart: boolean;
  /** The process exits non-zero once the engine generated this many tokens in total. */
  crashAfterTokens: number | undefined;
  /** The process exits non-zero this long after the API opened. */
  crashAtMs: number | undefined;
  /** The engine stops producing tokens (health stays 200) once it generated this many in total. */
  hangAfterTokens: number | undefined;
  errorRate503: number;
  errorRate429: number;
  /**
   * Calibration file or directory replacing the vendored one (sim/engine/calibration/data), which times every
   * Llama 3.1 size it has a file for unless fixedLatency.
   */
  calibration: string | undefined;
  gpuType: string;
  fp8: boolean;
}

export type ParseResult =
  | { kind: 'ok'; options: EngineSimOptions }
  /** argparse's own failures: usage line and `vllm serve: error: ...`, exit code 2. */
  | { kind: 'usage-error'; message: string }
  | { kind: 'invalid'; errors: FieldError[] };

export const USAGE = 'usage: vllm serve [model_tag] [options]';

function envName(flag: string): string {
  return `CORRAL_SIM_${flag.slice('sim-'.length).toUpperCase().replaceAll('-', '_')}`;
}

/** argv after `serve` (the launcher strips nothing: `serve` itself is expected as the first word). */
export function parseArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ParseResult {
  const args = [...argv];
  if (args[0] !== 'serve')
    return {
      kind: 'usage-error',
      message: `argument subparser: invalid choice: '${args[0] ?? ''}' (choose from 'serve')`,
    };
  args.shift();
  const raw = new Map<string, string>();
  const positionals: string[] = [];
  const unknown: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const flag = ALIASES[name] ?? name;
    const kind = FLAGS[flag] ?? FLAGS[flag.replaceAll('_', '-')];
    if (kind === undefined) {
      unknown.push(a);
      continue;
    }
    const key = flag.replaceAll('_', '-');
    if (kind === 'bool') {
      raw.set(key, eq >= 0 ? a.slice(eq + 1) : 'true');
    } else if (eq >= 0) {
      raw.set(key, a.slice(eq + 1));
    } else {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--'))
        return { kind: 'usage-error', message: `argument --${key}: expected one argument` };
      raw.set(key, v);
      i++;
    }
  }
  if (positionals.length > 1) unknown.push(...positionals.slice(1));
  if (unknown.length > 0)
    return { kind: 'usage-error', message: `unrecognized arguments: ${unknown.join(' ')}` };
  for (const flag of Object.keys(SIM_FLAGS)) {
    const v = env[envName(flag)];
    if (!raw.has(flag) && v !== undefined && v !== '') raw.set(flag, v);
  }
  return compile(positionals[0], raw);
}

/** argparse's own check of a flag with `choices` and type=int: usage error, exit 2. */
function blockSizeProblem(raw: Map<string, string>): string | undefined {
  const v = raw.get('block-size');
  if (v === undefined) return undefined;
  if (!/^[+-]?\d+$/.test(v.trim())) return `argument --block-size: invalid int value: '${v}'`;
  if (!VLLM_BLOCK_SIZES.includes(Number(v)))
    return `argument --block-size: invalid choice: ${Number(v)} (choose from ${VLLM_BLOCK_SIZES.join(', ')})`;
  return undefined;
}

function compile(model: string | undefined, raw: Map<string, string>): ParseResult {
  const badBlockSize = blockSizeProblem(raw);
  if (badBlockSize !== undefined) return { kind: 'usage-error', message: badBlockSize };
  const errors: FieldError[] = [];
  const num = (flag: string, dflt: number, check: (n: number) => boolean, what: string): number => {
    const v = raw.get(flag);
    if (v === undefined) return dflt;
    const n = FLAGS[flag] === 'int' ? Number(v) : Number.parseFloat(v);
    if (!Number.isFinite(n) || (FLAGS[flag] === 'int' && !Number.isInteger(n)) || !check(n)) {
      errors.push({ path: `--${flag}`, message: `must be ${what}, got "${v}"` });
      return dflt;
    }
    return n;
  };
  const positiveInt = (n: number) => n >= 1;
  if (model === undefined || model === '') errors.push({ path: 'model_tag', message: 'a model is required' });
  const output = raw.get('sim-output') ?? 'random';
  if (output !== 'random' && output !== 'echo')
    errors.push({ path: '--sim-output', message: `must be random or echo, got "${output}"` });
  const policy = raw.get('scheduling-policy') ?? 'fcfs';
  if (policy !== 'fcfs' && policy !== 'priority')
    errors.push({ path: '--scheduling-policy', message: `must be fcfs or priority, got "${policy}"` });
  const options: EngineSimOptions = {
    model: model ?? '',
    servedModelName: raw.get('served-model-name') ?? model ?? '',
    host: raw.get('host') ?? '0.0.0.0',
    port: num('port', 8000, (n) => n >= 1 && n <= 65535, 'a port 1..65535'),
    tensorParallelSize: num('tensor-parallel-size', 1, positiveInt, 'a positive integer'),
    pipelineParallelSize: num('pipeline-parallel-size', 1, positiveInt, 'a positive integer'),
    // vLLM's default is the model's max_position_embeddings: 131072 for every Llama 3.1.
    maxModelLen: num('max-model-len', 131072, positiveInt, 'a positive integer'),
    // vLLM's defaults depend on the GPU (common/hardware defaultSchedulerLimits); the GPU type is known below.
    maxNumSeqs: 0,
    maxNumBatchedTokens: 0,
    enablePrefixCaching:
      raw.get('no-enable-prefix-caching') !== 'true' && raw.get('enable-prefix-caching') !== 'false',
    gpuMemoryUtilization: num('gpu-memory-utilization', 0.9, (n) => n > 0 && n <= 1, 'in (0, 1]'),
    apiKey: raw.get('api-key'),
    schedulingPolicy: policy === 'priority' ? 'priority' : 'fcfs',
    headless: raw.get('headless') === 'true',
    nnodes: num('nnodes', 1, positiveInt, 'a positive integer'),
    nodeRank: num('node-rank', 0, (n) => n >= 0, 'a non-negative integer'),
    masterAddr: raw.get('master-addr') ?? '127.0.0.1',
    // The port VLLM.md's multi-node example uses (vLLM's --master-port default).
    masterPort: num('master-port', 29501, (n) => n >= 1 && n <= 65535, 'a port 1..65535'),
    joinTimeoutMs: num('sim-join-timeout-ms', 600_000, positiveInt, 'a positive integer'),
    startupMs: raw.has('sim-startup-ms')
      ? num('sim-startup-ms', 0, (n) => n >= 0, 'a non-negative integer')
      : undefined,
    // A warm page cache: safetensors read and copied at ~20 GB/s per GPU (the pinned host-to-GPU copy itself
    // measures ~55 GB/s in calibration/). A cold network volume is 1-2 GB/s.
    loadGBps: num('sim-load-gbps', 20, (n) => n > 0, 'a positive number'),
    timeScale: num('sim-time-scale', 1, (n) => n > 0, 'a positive number'),
    kvCacheDtype: /^fp8/.test(raw.get('kv-cache-dtype') ?? 'auto') ? 'fp8' : 'bf16',
    // vLLM's default on CUDA (Platform.check_and_update_config), what the planner sizes.
    blockSize: Number(raw.get('block-size') ?? BLOCK_SIZE),
    ttftMs: num('sim-ttft-ms', 50, (n) => n >= 0, 'non-negative'),
    itlMs: num('sim-itl-ms', 10, (n) => n >= 0, 'non-negative'),
    fixedLatency: raw.has('sim-ttft-ms') || raw.has('sim-itl-ms'),
    seed: num('sim-seed', 0, () => true, 'an integer'),
    output: output === 'echo' ? 'echo' : 'random',
    eosProb: num('sim-eos-prob', 0.005, (n) => n >= 0 && n <= 1, 'in [0, 1]'),
    kvTokens: raw.has('sim-kv-tokens')
      ? num('sim-kv-tokens', 0, positiveInt, 'a positive integer')
      : undefined,
    failStart: false,
    calibration: undefined,
    gpuType: 'h100-80g',
    fp8: false,
    crashAfterTokens: undefined,
    crashAtMs: undefined,
    hangAfterTokens: undefined,
    errorRate503: 0,
    errorRate429: 0,
  };
  if (options.nodeRank >= options.nnodes)
    errors.push({
      path: '--node-rank',
      message: `must be below --nnodes (${options.nnodes}), got ${options.nodeRank}`,
    });
  const optional = (flag: string) =>
    raw.has(flag) ? num(flag, 0, (n) => n >= 0, 'a non-negative integer') : undefined;
  options.calibration = raw.get('sim-calibration');
  options.gpuType = raw.get('sim-gpu-type') ?? 'h100-80g';
  const gpu = lookupGpu(options.gpuType);
  if (gpu === null)
    errors.push({
      path: '--sim-gpu-type',
      message: `must be one of ${GPU_IDS.join(', ')}, got "${options.gpuType}"`,
    });
  const limits = gpu ? defaultSchedulerLimits(gpu) : { maxNumSeqs: 256, maxNumBatchedTokens: 2048 };
  options.maxNumSeqs = num('max-num-seqs', limits.maxNumSeqs, positiveInt, 'a positive integer');
  options.maxNumBatchedTokens = num(
    'max-num-batched-tokens',
    limits.maxNumBatchedTokens,
    positiveInt,
    'a positive integer',
  );
  options.fp8 = raw.get('quantization') === 'fp8' || /fp8/i.test(options.model);
  options.failStart = raw.get('sim-fail-start') === 'true';
  options.crashAfterTokens = optional('sim-crash-after-tokens');
  options.crashAtMs = optional('sim-crash-at-ms');
  options.hangAfterTokens = optional('sim-hang-after-tokens');
  options.errorRate503 = num('sim-error-rate-503', 0, (n) => n >= 0 && n <= 1, 'in [0, 1]');
  options.errorRate429 = num('sim-error-rate-429', 0, (n) => n >= 0 && n <= 1, 'in [0, 1]');
  return errors.length > 0 ? { kind: 'invalid', errors } : { kind: 'ok', options };
}
