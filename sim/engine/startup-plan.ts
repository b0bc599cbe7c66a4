/**
 * What a simulated `vllm serve` start-up does and how long it takes, decided before any timer runs (pure):
 *   1. load the weights: the heaviest rank's weight bytes (common/hardware, the planner's arithmetic) at
 *      --sim-load-gbps per GPU (every rank loads its shard in parallel);
 *   2. profile memory and size the KV cache: kv blocks of the group = the smallest stage's
 *      (usable - weights - reserve) / bytes per block of --block-size tokens, exactly what `corral plan` prints
 *      at the default 16; then CUDA graph capture;
 *   3. fail like vLLM when the model does not fit: weights above the GPU's memory (CUDA OOM while loading), no
 *      memory left for the KV cache, or a KV cache smaller than one max_model_len request.
 * --sim-startup-ms replaces the computed durations (70% loading, 30% profiling, as before); --sim-kv-tokens
 * replaces the computed KV size. A model that is not built in (common/hardware/model-shape.ts) is sized from the
 * parameter count in its name, with the KV cache from --sim-kv-tokens (default 524,288 tokens).
 */
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { groupMemory } from '../../common/hardware/group-memory.ts';
import { GiB, maxConcurrency } from '../../common/hardware/memory.ts';
import { resolveBuiltinModel } from '../../common/hardware/model-shape.ts';

export interface StartupInput {
  model: string;
  tensorParallelSize: number;
  pipelineParallelSize: number;
  fp8: boolean;
  kvCacheDtype: 'bf16' | 'fp8';
  gpuType: string;
  gpuMemoryUtilization: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  /** Tokens per KV block (--block-size). */
  blockSize: number;
  kvTokens: number | undefined;
  startupMs: number | undefined;
  /** Weight loading bandwidth per GPU, GB/s. */
  loadGBps: number;
}

export interface StartupPlan {
  /** Simulated ms from launch to the end of weight loading, and from there to the API opening (or failing). */
  loadMs: number;
  profileMs: number;
  weightGiBPerGpu: number;
  /** The outcome: a KV cache of this many tokens, or vLLM's error lines (then exit 1). */
  result: { kind: 'ok'; kvTokens: number; concurrency: number } | { kind: 'fail'; error: string };
}

/** KV profiling, the profile run and CUDA graph capture after loading, simulated. */
export const PROFILE_MS = 1000;
const DEFAULT_KV_TOKENS = 524_288;

const gib = (bytes: number) => bytes / GiB;

function paramsFromName(model: string): number {
  const m = /(\d+(?:\.\d+)?)[bB](?![a-zA-Z])/.exec(model);
  return (m ? Number.parseFloat(m[1] ?? '8') : 8) * 1e9;
}

export function planStartup(i: StartupInput): StartupPlan {
  const gpu = lookupGpu(i.gpuType);
  const ref = resolveBuiltinModel(i.model);
  const gpus = i.tensorParallelSize * i.pipelineParallelSize;
  const fp8 = i.fp8 || ref?.preQuantized === 'fp8';
  const timing = (weightBytes: number) => {
    if (i.startupMs !== undefined) return { loadMs: i.startupMs * 0.7, profileMs: i.startupMs * 0.3 };
    return { loadMs: (weightBytes / (i.loadGBps * 1e9)) * 1000, profileMs: PROFILE_MS };
  };
  if (!ref || !gpu) {
    const weights = (paramsFromName(i.model) * (fp8 ? 1 : 2)) / gpus;
    const kvTokens = i.kvTokens ?? DEFAULT_KV_TOKENS;
    return {
      ...timing(weights),
      weightGiBPerGpu: gib(weights),
      result: { kind: 'ok', kvTokens, concurrency: maxConcurrency(kvTokens, i.maxModelLen) },
    };
  }
  const mem = groupMemory(
    ref.shape,
    gpu,
    {
      tp: i.tensorParallelSize,
      pp: i.pipelineParallelSize,
      dtype: fp8 ? 'fp8' : 'bf16',
      fp8Scheme: ref.fp8Scheme ?? (ref.preQuantized === 'fp8' ? 'meta' : 'all-linear'),
      kvCacheDtype: i.kvCacheDtype,
    },
    {
      gpuMemoryUtilization: i.gpuMemoryUtilization,
      maxNumSeqs: i.maxNumSeqs,
      maxNumBatchedTokens: i.maxNumBatchedTokens,
      blockSize: i.blockSize,
    },
  );
  const heaviest = Math.max(...mem.stages.map((s) => s.weights));
  const t = timing(heaviest);
  const plan = (result: StartupPlan['result']): StartupPlan => ({
    ...t,
    weightGiBPerGpu: gib(heaviest),
    result,
  });
  if (heaviest > gpu.memoryBytes)
    return plan({
      kind: 'fail',
      error: `torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ${gib(heaviest - gpu.memoryBytes).toFixed(2)} GiB. GPU 0 has a total capacity of ${gib(gpu.memoryBytes).toFixed(2)} GiB of which 0 bytes is free.`,
    });
  const stage = mem.limiting;
  if (stage.kvCache <= 0 || mem.kvBlocks === 0)
    return plan({
      kind: 'fail',
      error:
        'ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.',
    });
  const kvTokens = i.kvTokens ?? mem.kvTokens;
  if (kvTokens < i.maxModelLen) {
    const needed = i.maxModelLen * stage.kvBytesPerToken;
    const available = Math.floor(kvTokens / i.blockSize) * i.blockSize * stage.kvBytesPerToken;
    return plan({
      kind: 'fail',
      error: `ValueError: To serve at least one request with the models's max seq len (${i.maxModelLen}), (${gib(needed).toFixed(2)} GiB KV cache is needed, which is larger than the available KV cache memory (${gib(available).toFixed(2)} GiB). Based on the available memory, the estimated maximum model length is ${kvTokens}. Try increasing \`gpu_memory_utilization\` or decreasing \`max_model_len\` when initializing the engine.`,
    });
  }
  return plan({ kind: 'ok', kvTokens, concurrency: maxConcurrency(kvTokens, i.maxModelLen) });
}
