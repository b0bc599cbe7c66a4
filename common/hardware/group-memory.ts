/**
 * The memory of a whole group (tp x pp ranks of one GPU type) from the per-rank arithmetic in memory.ts: every
 * stage is sized, and the group's KV capacity is the smallest stage's, because vLLM allocates the same number of
 * blocks on every rank.
 */
import type { GpuType } from './gpu-catalog.ts';
import {
  BLOCK_SIZE,
  kvBytesPerTokenPerGpu,
  kvCapacity,
  type RuntimeReserve,
  runtimeReserve,
  type ShardSpec,
  stageLayers,
  stageWeightBytesPerGpu,
} from './memory.ts';
import type { ModelShape } from './model-shape.ts';

export interface GroupMemoryOptions {
  readonly gpuMemoryUtilization: number;
  readonly maxNumBatchedTokens: number;
  readonly maxNumSeqs: number;
  /** Tokens per KV block (--block-size); the planner plans vLLM's CUDA default, BLOCK_SIZE. */
  readonly blockSize?: number;
}

export interface StageMemory {
  readonly stage: number;
  readonly layers: number;
  readonly total: number;
  readonly usable: number;
  readonly weights: number;
  readonly reserve: RuntimeReserve;
  /** usable - weights - reserve; negative when the stage does not fit. */
  readonly kvCache: number;
  readonly kvBytesPerToken: number;
  readonly kvBlocks: number;
}

export interface GroupMemory {
  readonly stages: readonly StageMemory[];
  /** The stage that limits the group: the heaviest weights, or the fewest KV blocks when all fit. */
  readonly limiting: StageMemory;
  /** Tokens the group's KV cache holds (blocks of the smallest stage x block size). */
  readonly kvTokens: number;
  readonly kvBlocks: number;
}

/** vLLM's default scheduler limits (VLLM.md): larger on >= 70 GiB GPUs other than A100. */
export function defaultSchedulerLimits(gpu: GpuType): { maxNumSeqs: number; maxNumBatchedTokens: number } {
  const big = gpu.memoryBytes >= 70 * 1024 ** 3 && !gpu.id.startsWith('a100');
  return big
    ? { maxNumSeqs: 1024, maxNumBatchedTokens: 8192 }
    : { maxNumSeqs: 256, maxNumBatchedTokens: 2048 };
}

export function groupMemory(
  m: ModelShape,
  gpu: GpuType,
  spec: ShardSpec,
  o: GroupMemoryOptions,
): GroupMemory {
  const layers = stageLayers(m.layers, spec.pp);
  const stages = layers.map((count, stage): StageMemory => {
    const weights = stageWeightBytesPerGpu(m, spec, stage);
    const reserve = runtimeReserve(m, {
      tp: spec.tp,
      pp: spec.pp,
      maxNumBatchedTokens: o.maxNumBatchedTokens,
      maxNumSeqs: o.maxNumSeqs,
    });
    const perLayer = kvBytesPerTokenPerGpu(m, 1, spec.tp, spec.kvCacheDtype);
    const cap = kvCapacity({
      totalGpuMemory: gpu.memoryBytes,
      gpuMemoryUtilization: o.gpuMemoryUtilization,
      weights,
      reserve: reserve.total,
      kvBytesPerTokenPerLayer: perLayer,
      layersOnRank: count,
      blockSize: o.blockSize,
    });
    return {
      stage,
      layers: count,
      total: gpu.memoryBytes,
      usable: cap.usable,
      weights,
      reserve,
      kvCache: cap.kvCacheBytes,
      kvBytesPerToken: perLayer * count,
      kvBlocks: cap.blocks,
    };
  });
  const first = stages[0];
  if (!first) throw new RangeError(`pp must be >= 1, got ${spec.pp}`);
  const heaviest = stages.reduce((a, b) => (b.weights > a.weights ? b : a), first);
  const fewest = stages.reduce((a, b) => (b.kvBlocks < a.kvBlocks ? b : a), first);
  const limiting = fewest.kvBlocks > 0 ? fewest : heaviest;
  const blockSize = o.blockSize ?? BLOCK_SIZE;
  return { stages, limiting, kvTokens: fewest.kvBlocks * blockSize, kvBlocks: fewest.kvBlocks };
}
