/**
 * A group's KV-cache size in 16-token blocks, for the prefix index's believed capacity: the heartbeat does not
 * carry it (vLLM exports it only as a label of vllm:cache_config_info), so it comes from the same memory
 * arithmetic `corral plan` and the simulator use (common/hardware), for the deployment's model, shape and GPU.
 * A model or GPU the catalog does not know gets a generous default; the index's hit-rate correction shrinks an
 * overestimate to what the engines really keep.
 */
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { defaultSchedulerLimits, groupMemory } from '../../common/hardware/group-memory.ts';
import { resolveBuiltinModel } from '../../common/hardware/model-shape.ts';
import type { Deployment } from '../config/controller-config.ts';

/** 1M tokens: more than any single group of the catalog holds, so the correction only ever shrinks it. */
export const DEFAULT_KV_BLOCKS = 65_536;

export function kvCapacityBlocks(d: Deployment, gpuType: string | undefined): number {
  const model = resolveBuiltinModel(d.model);
  const gpu = lookupGpu(d.gpuType ?? gpuType ?? '');
  if (!model || !gpu) return DEFAULT_KV_BLOCKS;
  const dtype = model.preQuantized === 'fp8' || d.quantization === 'fp8' ? 'fp8' : 'bf16';
  const memory = groupMemory(
    model.shape,
    gpu,
    {
      tp: d.tensorParallel,
      pp: d.pipelineParallel,
      dtype,
      fp8Scheme: model.fp8Scheme ?? (model.preQuantized === 'fp8' ? 'meta' : 'all-linear'),
      kvCacheDtype: 'bf16',
    },
    {
      gpuMemoryUtilization: d.gpuMemoryUtilization,
      ...defaultSchedulerLimits(gpu),
      maxNumSeqs: d.maxNumSeqs,
    },
  );
  return memory.kvBlocks > 0 ? memory.kvBlocks : DEFAULT_KV_BLOCKS;
}
