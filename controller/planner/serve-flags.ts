/**
 * The `vllm serve` arguments of every node rank of a plan, for vLLM's multiprocessing multi-node backend (no Ray):
 *   rank 0:  vllm serve <model> --tensor-parallel-size T --pipeline-parallel-size P --nnodes N --node-rank 0
 *            --master-addr <leader> --master-port <port> ...
 *   rank k:  the same with --node-rank k --headless (a headless rank serves no HTTP)
 * (VLLM.md, "Multi-node with the multiprocessing backend"). A single-node plan gets none of the multi-node flags.
 * The worker adds --host/--port and the engine binary; the caller may append its own flags (served name, limits).
 */
import type { Plan } from './plan.ts';

export interface ServeFlagsOptions {
  /** What vLLM loads: a Hugging Face repo or a local path. Defaults to the plan's model name. */
  readonly model?: string;
  /** Address of rank 0, reachable from every other rank. Required when the plan spans nodes. */
  readonly masterAddr?: string;
  /** vLLM's default is 29501. */
  readonly masterPort?: number;
}

export const DEFAULT_MASTER_PORT = 29501;

/** One argument list per node rank, index = --node-rank. */
export function vllmServeArgs(plan: Plan, o: ServeFlagsOptions = {}): string[][] {
  const common = [
    o.model ?? plan.model,
    '--tensor-parallel-size',
    String(plan.tp),
    '--pipeline-parallel-size',
    String(plan.pp),
    '--max-model-len',
    String(plan.maxModelLen),
    '--gpu-memory-utilization',
    String(plan.gpuMemoryUtilization),
  ];
  // Pre-quantized checkpoints carry their scheme in config.json; passing --quantization fp8 would conflict.
  if (plan.quantization === 'fp8') common.push('--quantization', 'fp8');
  if (plan.kvCacheDtype === 'fp8') common.push('--kv-cache-dtype', 'fp8');
  if (plan.nodes === 1) return [common];

  if (!o.masterAddr) throw new RangeError(`a ${plan.nodes}-node plan needs masterAddr (rank 0's address)`);
  const port = String(o.masterPort ?? DEFAULT_MASTER_PORT);
  return Array.from({ length: plan.nodes }, (_, rank) => [
    ...common,
    '--nnodes',
    String(plan.nodes),
    '--node-rank',
    String(rank),
    '--master-addr',
    o.masterAddr as string,
    '--master-port',
    port,
    ...(rank > 0 ? ['--headless'] : []),
  ]);
}
