/**
 * A group's engine limits from the hardware arithmetic the planner uses (common/hardware): KV blocks from the
 * per-GPU memory split, max-num-seqs and max-num-batched-tokens from vLLM's defaults for the GPU.
 */
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { defaultSchedulerLimits, groupMemory } from '../../common/hardware/group-memory.ts';
import type { ShardSpec } from '../../common/hardware/memory.ts';
import { BUILTIN_MODELS } from '../../common/hardware/model-shape.ts';
import type { GroupShape } from './engine-group.ts';

export interface GroupHardware {
  model: string;
  gpu: string;
  spec: ShardSpec;
  gpuMemoryUtilization?: number;
  maxModelLen?: number;
}

/** Llama 3.1 405B, Meta's FP8 checkpoint (vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct-FP8), TP8 on H100. */
export const LLAMA_405B_FP8_TP8_H100: GroupHardware = {
  model: 'llama-3.1-405b',
  gpu: 'h100-80g',
  spec: { tp: 8, pp: 1, dtype: 'fp8', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
};

export function groupShape(h: GroupHardware): GroupShape {
  const model = BUILTIN_MODELS[h.model];
  const gpu = lookupGpu(h.gpu);
  if (!model) throw new RangeError(`unknown model ${h.model}`);
  if (!gpu) throw new RangeError(`unknown GPU ${h.gpu}`);
  const limits = defaultSchedulerLimits(gpu);
  const memory = groupMemory(model, gpu, h.spec, {
    gpuMemoryUtilization: h.gpuMemoryUtilization ?? 0.9,
    ...limits,
  });
  if (memory.kvBlocks <= 0)
    throw new RangeError(`${h.model} does not fit ${h.spec.tp}x${h.spec.pp} ${h.gpu}`);
  return { numBlocks: memory.kvBlocks, ...limits, maxModelLen: h.maxModelLen ?? 131_072 };
}
