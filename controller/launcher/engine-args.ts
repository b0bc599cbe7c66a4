/**
 * The `vllm serve` arguments of one single-node engine of a deployment. The worker adds --host and --port (it
 * owns the node's ports) and picks the binary (vLLM or the simulator, which takes the same flags).
 */
import type { Deployment } from '../config/controller-config.ts';

/** Stable per (deployment, worker), so a reconnecting controller re-sends the same id and the worker keeps it. */
export function engineIdOf(deployment: string, workerId: string): string {
  return `${deployment}-${workerId}`;
}

export function engineArgs(d: Deployment): string[] {
  return [
    d.model,
    '--served-model-name',
    d.name,
    '--tensor-parallel-size',
    String(d.gpusPerReplica),
    '--max-model-len',
    String(d.maxModelLen),
    '--max-num-seqs',
    String(d.maxNumSeqs),
    '--gpu-memory-utilization',
    String(d.gpuMemoryUtilization),
    ...d.engineArgs,
  ];
}
