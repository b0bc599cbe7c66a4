/**
 * Control.Plan: the planner behind the operators' API. With `gpus` empty it plans over the workers registered
 * now: the largest set of identical nodes (same GPU type and count), since a group's ranks must match.
 */
import { InvalidArgumentError } from '../../common/errors.ts';
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import type { PlanRequest, PlanResponse, PlanSummary } from '../../proto/gen/corral/v1/control.ts';
import type { Inventory as WorkerInventory } from '../../proto/gen/corral/v1/worker.ts';
import { type Inventory, type Plan, plan } from '../planner/plan.ts';
import { parsePlanRequest } from '../planner/plan-request.ts';
import { vllmServeArgs } from '../planner/serve-flags.ts';

export function planCall(req: PlanRequest, registered: readonly WorkerInventory[]): PlanResponse {
  const fromWorkers = registeredInventory(registered);
  const parsed = parsePlanRequest(
    {
      model: req.model,
      gpus: req.gpus,
      dtype: req.dtype,
      'max-model-len': req.maxModelLen,
      'gpu-memory-utilization': req.gpuMemoryUtilization,
      'min-concurrency': req.minConcurrency,
      'kv-cache-dtype': req.kvCacheDtype,
    },
    { fieldName: (f) => f.replaceAll('-', '_'), ...(fromWorkers && { defaultInventory: fromWorkers }) },
  );
  if (!parsed.ok) {
    const noWorkers = req.gpus === '' && !fromWorkers ? ' (no worker with GPUs is registered)' : '';
    throw new InvalidArgumentError(`${parsed.error.join('; ')}${noWorkers}`);
  }
  const { model, dtype, inventory, constraints } = parsed.value;
  const result = plan(model, dtype, inventory, constraints);
  return {
    plans: result.plans.map(planSummary),
    rejected: result.rejected.map((r) => ({ shape: r.shape, reason: r.reason })),
    inventory: `${inventory.nodes}x${inventory.gpusPerNode}x${inventory.gpu.id}`,
  };
}

/** The most GPUs held by nodes of one (type, count); undefined when no worker has a known GPU. */
export function registeredInventory(workers: readonly WorkerInventory[]): Inventory | undefined {
  const classes = new Map<string, Inventory>();
  for (const w of workers) {
    const gpu = w.gpus ? lookupGpu(w.gpus.type) : undefined;
    if (!gpu || !w.gpus || w.gpus.count === 0) continue;
    const key = `${gpu.id}/${w.gpus.count}`;
    const c = classes.get(key);
    classes.set(key, { nodes: (c?.nodes ?? 0) + 1, gpusPerNode: w.gpus.count, gpu });
  }
  let best: Inventory | undefined;
  for (const c of classes.values()) {
    if (!best || c.nodes * c.gpusPerNode > best.nodes * best.gpusPerNode) best = c;
  }
  return best;
}

function planSummary(p: Plan): PlanSummary {
  return {
    model: p.model,
    gpu: p.gpu,
    tp: p.tp,
    pp: p.pp,
    nodes: p.nodes,
    gpusPerNode: p.gpusPerNode,
    dtype: p.dtype,
    quantization: p.quantization ?? '',
    kvCacheDtype: p.kvCacheDtype,
    maxModelLen: p.maxModelLen,
    gpuMemoryUtilization: p.gpuMemoryUtilization,
    perGpu: {
      total: Math.round(p.perGpu.total),
      usable: Math.round(p.perGpu.usable),
      weights: Math.round(p.perGpu.weights),
      reserve: Math.round(p.perGpu.reserve),
      kvCache: Math.round(p.perGpu.kvCache),
    },
    kvTokens: p.kvTokens,
    maxConcurrency: p.maxConcurrency,
    replicas: p.replicas,
    tpotBatch1Ms: p.estimate.tpotBatch1Ms,
    tokensPerSecond: p.estimate.tokensPerSecond,
    notes: [...p.notes],
    vllmArgs: vllmServeArgs(p, { masterAddr: '<rank-0-address>' }).map((args) => ({ args })),
  };
}
