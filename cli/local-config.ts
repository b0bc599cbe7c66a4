/**
 * The controller config of the local cluster: the model it serves on simulated GPUs, one of
 *   405b-fp8   (default) Llama 3.1 405B FP8, TP8 on one node per group: N nodes -> N groups
 *              (VLLM.md: `vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct-FP8 --tensor-parallel-size 8`)
 *   405b-bf16  Llama 3.1 405B BF16, TP8 x PP2: two nodes per group, in one rack: N nodes -> floor(N/2) groups
 *              (BF16 weights are 94.5 GiB per GPU at TP8 on H100-80G: they need a second node's GPUs)
 *   8b         Llama 3.1 8B on one GPU per node (the walking skeleton's model)
 * maxModelLen stays well inside what each plan's KV cache holds (`corral plan` shows the arithmetic), so the
 * simulated engines start on every GPU type the local cluster offers.
 */

export const LOCAL_MODELS = ['405b-fp8', '405b-bf16', '8b'] as const;
export type LocalModel = (typeof LOCAL_MODELS)[number];

/** The label the local workers carry: every simulated node is in rack-1. */
export const LOCAL_TOPOLOGY_KEY = 'topology.corral.dev/rack';

export interface LocalConfigOptions {
  nodes: number;
  gpusPerNode: number;
  model?: LocalModel;
  gpuType?: string;
}

/** Why the options cannot serve the model (e.g. too few GPUs per node), or undefined. */
export function localConfigProblem(o: LocalConfigOptions): string | undefined {
  const model = o.model ?? '405b-fp8';
  if (model === '8b') return undefined;
  if (o.gpusPerNode < 8) return `${model} runs TP8: it needs --gpus-per-node 8 or more`;
  if (model === '405b-bf16' && o.nodes < 2)
    return '405b-bf16 runs TP8 x PP2 over 2 nodes: it needs --nodes 2 or more';
  return undefined;
}

export function localClusterConfig(o: LocalConfigOptions): string {
  const model = o.model ?? '405b-fp8';
  const head = `# Written by corral up; the deployments the local cluster serves (model ${model}).
heartbeatIntervalMs: 1000
workerTimeoutMs: 3000
deployments:
`;
  const gpuType = o.gpuType ? `    gpuType: ${o.gpuType}\n` : '';
  switch (model) {
    case '8b':
      return `${head}  - name: llama-3.1-8b-instruct
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: ${o.nodes}
    gpusPerReplica: 1
    maxModelLen: 8192
    maxNumSeqs: 256
    gpuMemoryUtilization: 0.9
    defaultMaxTokens: 256
    maxPromptBytes: 1048576
`;
    case '405b-fp8':
      return `${head}  - name: llama-3.1-405b-instruct
    model: meta-llama/Meta-Llama-3.1-405B-Instruct-FP8
    replicas: ${o.nodes}
    tensorParallel: 8
    pipelineParallel: 1
${gpuType}    maxModelLen: 16384
    maxNumSeqs: 256
    gpuMemoryUtilization: 0.9
    defaultMaxTokens: 256
    maxPromptBytes: 1048576
`;
    case '405b-bf16':
      return `${head}  - name: llama-3.1-405b-instruct
    model: meta-llama/Llama-3.1-405B-Instruct
    replicas: ${Math.floor(o.nodes / 2)}
    tensorParallel: 8
    pipelineParallel: 2
${gpuType}    topologyKey: ${LOCAL_TOPOLOGY_KEY}
    maxModelLen: 16384
    maxNumSeqs: 256
    gpuMemoryUtilization: 0.9
    defaultMaxTokens: 256
    maxPromptBytes: 1048576
`;
  }
}
