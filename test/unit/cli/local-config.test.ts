import { describe, expect, it } from 'vitest';
import { localClusterConfig, localConfigProblem } from '../../../cli/local-config.ts';
import { parseControllerConfig } from '../../../controller/config/config-file.ts';

describe('localClusterConfig', () => {
  it.each([
    ['405b-fp8', 2, { replicas: 2, tensorParallel: 8, pipelineParallel: 1, nodes: 1 }],
    ['405b-bf16', 4, { replicas: 2, tensorParallel: 8, pipelineParallel: 2, nodes: 2 }],
    ['405b-bf16', 5, { replicas: 2, nodes: 2, topologyKey: 'topology.corral.dev/rack' }],
    ['8b', 3, { replicas: 3, gpusPerReplica: 1, nodes: 1 }],
  ] as const)('%s on %i nodes compiles to %o', (model, nodes, expected) => {
    const c = parseControllerConfig(localClusterConfig({ nodes, gpusPerNode: 8, model }), 'local.yaml');
    expect(c.deployments[0]).toMatchObject(expected);
  });

  it('defaults to 405B FP8 on one node per group, restricted to the given GPU type', () => {
    const c = parseControllerConfig(
      localClusterConfig({ nodes: 2, gpusPerNode: 8, gpuType: 'h100-80g' }),
      'local.yaml',
    );
    expect(c.deployments[0]).toMatchObject({
      name: 'llama-3.1-405b-instruct',
      model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8',
      gpuType: 'h100-80g',
      nodes: 1,
    });
  });

  it.each([
    [{ nodes: 1, gpusPerNode: 8, model: '405b-bf16' }, '--nodes 2 or more'],
    [{ nodes: 2, gpusPerNode: 4 }, '--gpus-per-node 8 or more'],
    [{ nodes: 1, gpusPerNode: 1, model: '8b' }, undefined],
  ] as const)('%o -> %s', (options, problem) => {
    const p = localConfigProblem(options);
    if (problem === undefined) expect(p).toBeUndefined();
    else expect(p).toContain(problem);
  });
});
