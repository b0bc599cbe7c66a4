/**
 * The `vllm serve` arguments of one rank of a deployment's group. The worker adds --host and --port (it owns the
 * node's ports; a headless rank gets no --port) and picks the binary (vLLM or the simulator, same flags).
 *
 * A single-node group is issue 2's engine: `<model> --served-model-name N --tensor-parallel-size T ...`.
 * A group of P nodes uses vLLM's multiprocessing multi-node backend (VLLM.md; the same tail as the planner's
 * vllmServeArgs): `--pipeline-parallel-size P --nnodes P --node-rank R --master-addr <rank 0's engine host>
 * --master-port <port of this group>`, and `--headless` on ranks > 0, which serve no HTTP.
 */

import type { Deployment } from '../config/controller-config.ts';
import { parseEngineIdOf } from '../groups/group-reconciler.ts';
import { DEFAULT_MASTER_PORT } from '../planner/serve-flags.ts';

/** Stable per (deployment, worker): a single-node group keeps its id on a worker, as in issue 2, so a
 * reconnecting controller re-sends the same id and the worker keeps the engine it runs. */
export function engineIdOf(deployment: string, workerId: string): string {
  return `${deployment}-${workerId}`;
}

export interface RankOptions {
  rank: number;
  /** rank 0's engine host, reachable from the other ranks. Required when the group spans nodes. */
  masterAddr?: string;
  masterPort?: number;
}

export function engineArgs(d: Deployment, o: RankOptions = { rank: 0 }): string[] {
  const args = [d.model, '--served-model-name', d.name, '--tensor-parallel-size', String(d.tensorParallel)];
  if (d.pipelineParallel > 1) args.push('--pipeline-parallel-size', String(d.pipelineParallel));
  args.push(
    '--max-model-len',
    String(d.maxModelLen),
    '--max-num-seqs',
    String(d.maxNumSeqs),
    '--gpu-memory-utilization',
    String(d.gpuMemoryUtilization),
  );
  if (d.quantization) args.push('--quantization', d.quantization);
  if (d.nodes > 1) {
    if (!o.masterAddr) throw new RangeError(`${d.name}: a ${d.nodes}-node group needs rank 0's address`);
    args.push(
      '--nnodes',
      String(d.nodes),
      '--node-rank',
      String(o.rank),
      '--master-addr',
      o.masterAddr,
      '--master-port',
      String(o.masterPort ?? DEFAULT_MASTER_PORT),
    );
    if (o.rank > 0) args.push('--headless');
  }
  return [...args, ...d.engineArgs];
}

/** `<d>-<worker>` (a single-node group) or `<d>-g<n>.a<k>.r<r>` (a rank of a group). */
export function belongsTo(engineId: string, deployment: string, workerId: string): boolean {
  if (engineId === engineIdOf(deployment, workerId)) return true;
  return parseRankEngineId(engineId, deployment) !== undefined;
}

export function parseRankEngineId(
  engineId: string,
  deployment: string,
): { groupId: string; attempt: number; rank: number } | undefined {
  const p = parseEngineIdOf(engineId, deployment);
  return p && { groupId: `${deployment}-g${p.ordinal}`, attempt: p.attempt, rank: p.rank };
}
