/**
 * A deployment's `plan:` option: instead of writing tensorParallel/pipelineParallel by hand, name the worker
 * pool's node shape and let the planner pick the best plan for the model, as `corral plan` shows it:
 *
 *   plan:
 *     gpus: 2x8xh100-80g   # at most 2 nodes per group, each with 8 H100-80G (the --gpus of `corral plan`)
 *     dtype: bf16          # bf16 | fp8 | auto (default auto: BF16 when it fits, else FP8)
 *
 * It is resolved when the config is compiled, from the declared pool, not from the workers that happen to be
 * registered: a deployment's shape then never changes under running groups, and a config that cannot run is
 * refused at start with the planner's reasons. The model must be a built-in shape (Llama 3.1 8B/70B/405B, by short
 * id or Hugging Face name). Only plans that keep tensor parallelism inside a node are taken (groups place TP on
 * one node and PP across nodes), which is also how the planner ranks them.
 */
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { resolveBuiltinModel } from '../../common/hardware/model-shape.ts';
import { type DtypeChoice, type Plan, plan } from '../planner/plan.ts';

export interface AutoPlan {
  tensorParallel: number;
  pipelineParallel: number;
  gpuType: string;
  quantization?: 'fp8';
  /** One line for the log: which plan and why. */
  summary: string;
}

const GPUS = /^(\d+)x(\d+)x([a-z0-9-]+)$/i;

/** Returns the chosen plan, or the problems as [relative path, message] pairs. */
export function resolveAutoPlan(
  raw: unknown,
  model: string,
  limits: { maxModelLen: number; gpuMemoryUtilization: number },
): AutoPlan | [string, string][] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return [['', 'must be a mapping']];
  const o = raw as Record<string, unknown>;
  const errors: [string, string][] = [];
  for (const k of Object.keys(o)) if (k !== 'gpus' && k !== 'dtype') errors.push([`.${k}`, 'unknown field']);
  const m = typeof o.gpus === 'string' ? GPUS.exec(o.gpus.trim()) : null;
  const gpu = m ? lookupGpu(m[3] ?? '') : null;
  if (!m) errors.push(['.gpus', 'must be NODESxGPUSxTYPE, e.g. 2x8xh100-80g']);
  else if (!gpu) errors.push(['.gpus', `unknown GPU type ${m[3]}`]);
  const dtype = (o.dtype ?? 'auto') as DtypeChoice;
  if (!['bf16', 'fp8', 'auto'].includes(dtype)) errors.push(['.dtype', 'must be bf16, fp8 or auto']);
  const ref = resolveBuiltinModel(model);
  if (!ref) errors.push(['', `model ${model} has no built-in shape; give tensorParallel/pipelineParallel`]);
  if (errors.length > 0 || !m || !gpu || !ref) return errors;

  const result = plan(
    ref,
    dtype,
    { nodes: Number(m[1]), gpusPerNode: Number(m[2]), gpu },
    { maxModelLen: limits.maxModelLen, gpuMemoryUtilization: limits.gpuMemoryUtilization },
  );
  const best = result.plans.find(
    (p: Plan) => p.tp <= p.gpusPerNode && p.tp * p.pp === p.gpusPerNode * p.nodes,
  );
  if (!best) {
    const why = result.rejected.map((r) => r.reason).join('; ');
    return [['', `no plan of ${model} fits ${o.gpus}${why ? `: ${why}` : ''}`]];
  }
  return {
    tensorParallel: best.tp,
    pipelineParallel: best.pp,
    gpuType: gpu.id,
    ...(best.quantization ? { quantization: best.quantization } : {}),
    summary: `${best.dtype.toUpperCase()} TP${best.tp}${best.pp > 1 ? `xPP${best.pp}` : ''} on ${best.nodes}x${best.gpusPerNode} ${gpu.id}, ${best.kvTokens} KV tokens`,
  };
}
