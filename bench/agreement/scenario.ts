/**
 * The scenario both sides of bench:routing-agreement run: one small shared-prefix workload on 2 groups of
 * Llama 3.1 405B FP8 TP8 on simulated H100s, with the engine settings the local cluster's engines start with
 * (the controller launches them with --max-num-seqs 256 and max_model_len 16384; max-num-batched-tokens and the
 * KV cache follow from the GPU as in the simulator, common/hardware), so the cluster simulator's groups are
 * exactly the engines the processes run.
 */
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { defaultSchedulerLimits, groupMemory } from '../../common/hardware/group-memory.ts';
import { BUILTIN_MODELS } from '../../common/hardware/model-shape.ts';
import type { GroupShape } from '../../sim/cluster/engine-group.ts';
import type { Workload } from '../../sim/cluster/workload.ts';
import { sharedPrefix } from '../../sim/cluster/workloads/shared-prefix.ts';

export const DEPLOYMENT = 'llama-3.1-405b-instruct';
export const CHECKPOINT = 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8';
export const GROUPS = 2;
export const GPU = 'h100-80g';
export const MAX_NUM_SEQS = 256;
export const MAX_MODEL_LEN = 16_384;

export interface ScenarioOptions {
  /** Offered requests per simulated second. */
  ratePerS: number;
  /** Simulated seconds of arrivals (the first fifth is a ramp, not measured). */
  seconds: number;
  seed: number;
}

/** 6 tenants x 3,000-token system prompt, 4 users each, 100-token questions, 30-80 output tokens. */
export function agreementWorkload(o: ScenarioOptions): Workload {
  return sharedPrefix({
    name: 'shared_prefix_small',
    tenants: 6,
    prefixTokens: 3000,
    usersPerTenant: 4,
    questionTokens: 100,
    outputTokens: { min: 30, max: 80 },
    arrivals: { ratePerS: o.ratePerS, durationS: o.seconds, rampS: o.seconds / 5 },
    seed: o.seed,
  });
}

/** One group as the local cluster's engine sizes itself (sim/engine/startup-plan.ts). */
export function agreementShape(): GroupShape {
  const gpu = lookupGpu(GPU);
  const model = BUILTIN_MODELS['llama-3.1-405b'];
  if (!gpu || !model) throw new Error('the hardware catalog lacks H100 or Llama 3.1 405B');
  const limits = { ...defaultSchedulerLimits(gpu), maxNumSeqs: MAX_NUM_SEQS };
  const memory = groupMemory(
    model,
    gpu,
    { tp: 8, pp: 1, dtype: 'fp8', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
    { gpuMemoryUtilization: 0.9, ...limits },
  );
  return { numBlocks: memory.kvBlocks, ...limits, maxModelLen: MAX_MODEL_LEN };
}
