/** The controller config of the local cluster: the model it serves on simulated GPUs. */
export function localClusterConfig(options: { nodes: number; gpusPerNode: number }): string {
  const replicas = options.nodes;
  return `# Written by corral up; the deployments the local cluster serves.
heartbeatIntervalMs: 1000
workerTimeoutMs: 3000
deployments:
  - name: llama-3.1-8b-instruct
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: ${replicas}
    gpusPerReplica: 1
    maxModelLen: 8192
    maxNumSeqs: 256
    gpuMemoryUtilization: 0.9
    defaultMaxTokens: 256
    maxPromptBytes: 1048576
`;
}
