import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../../common/errors.ts';
import { parseControllerConfig } from '../../../../controller/config/config-file.ts';
import {
  CONTROLLER_DEFAULTS,
  compileControllerConfig,
  DEPLOYMENT_DEFAULTS,
  GROUPS_DEFAULTS,
  parseListen,
  QUEUE_DEFAULTS,
} from '../../../../controller/config/controller-config.ts';

const minimal = { name: 'llama-3.1-8b-instruct', model: 'meta-llama/Llama-3.1-8B-Instruct' };

function errorsOf(input: unknown): { path: string; message: string }[] {
  try {
    compileControllerConfig(input);
  } catch (e) {
    if (e instanceof ValidationError) return [...e.errors];
    throw e;
  }
  throw new Error('expected a ValidationError');
}

describe('compileControllerConfig', () => {
  it('fills every documented default', () => {
    const c = compileControllerConfig({ deployments: [minimal] });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(c.heartbeatIntervalMs).toBe(CONTROLLER_DEFAULTS.heartbeatIntervalMs);
    expect(c.workerTimeoutMs).toBe(CONTROLLER_DEFAULTS.workerTimeoutMs);
    expect(c.groups).toEqual(GROUPS_DEFAULTS);
    expect(c.queue).toEqual(QUEUE_DEFAULTS);
    expect(c.redis).toBeUndefined();
    expect(c.deployments[0]).toEqual({
      ...minimal,
      ...DEPLOYMENT_DEFAULTS,
      tensorParallel: 1,
      pipelineParallel: 1,
      nodes: 1,
      gpusPerNode: 1,
      engineArgs: [],
      engineEnv: {},
    });
  });

  it.each([
    ['gpusPerReplica alone is single-node TP', { gpusPerReplica: 8 }, [8, 1, 8]],
    ['TP x PP over nodes', { tensorParallel: 8, pipelineParallel: 2 }, [8, 2, 16]],
    ['both, consistent', { gpusPerReplica: 16, tensorParallel: 8, pipelineParallel: 2 }, [8, 2, 16]],
  ])('parallelism: %s', (_name, extra, [tp, pp, total]) => {
    const dep = compileControllerConfig({ deployments: [{ ...minimal, ...extra }] }).deployments[0];
    expect(dep).toMatchObject({
      tensorParallel: tp,
      pipelineParallel: pp,
      gpusPerReplica: total,
      nodes: pp,
      gpusPerNode: tp,
    });
  });

  it('keeps placement and quantization options, and the groups policy', () => {
    const c = compileControllerConfig({
      groups: {
        maxRestarts: 0,
        backoffBaseMs: 200,
        backoffMaxMs: 400,
        startTimeoutMs: 5000,
        masterPortBase: 40000,
      },
      deployments: [
        {
          ...minimal,
          tensorParallel: 8,
          pipelineParallel: 2,
          gpuType: 'h100-80g',
          topologyKey: 'rack',
          quantization: 'fp8',
        },
      ],
    });
    expect(c.groups).toEqual({
      maxRestarts: 0,
      backoffBaseMs: 200,
      backoffMaxMs: 400,
      startTimeoutMs: 5000,
      masterPortBase: 40000,
    });
    expect(c.deployments[0]).toMatchObject({ gpuType: 'h100-80g', topologyKey: 'rack', quantization: 'fp8' });
  });

  it('keeps the redis URL and queue settings, defaulting the rest of the queue', () => {
    const c = compileControllerConfig({
      redis: 'redis://10.0.0.5:6379',
      queue: { leaseMs: 2000, detachGraceMs: 0 },
      deployments: [minimal],
    });
    expect(c.redis).toBe('redis://10.0.0.5:6379');
    expect(c.queue).toEqual({ ...QUEUE_DEFAULTS, leaseMs: 2000, detachGraceMs: 0 });
    // The service time is derived per deployment unless the operator gives one (dispatch/service-time.ts).
    expect(c.queue.serviceMs).toBeUndefined();
    const given = compileControllerConfig({ queue: { serviceMs: 400 }, deployments: [minimal] });
    expect(given.queue.serviceMs).toBe(400);
    expect(() => compileControllerConfig({ queue: { serviceMs: 0 }, deployments: [minimal] })).toThrow(
      /queue\.serviceMs: must be a positive integer/,
    );
  });

  it('keeps given values', () => {
    const c = compileControllerConfig({
      listen: '[::1]:0',
      heartbeatIntervalMs: 500,
      workerTimeoutMs: 2000,
      deployments: [
        {
          ...minimal,
          replicas: 0,
          gpusPerReplica: 8,
          maxModelLen: 4096,
          maxNumSeqs: 64,
          gpuMemoryUtilization: 0.85,
          defaultMaxTokens: 32,
          maxPromptBytes: 100,
          engineArgs: ['--sim-ttft-ms', '20'],
          engineEnv: { HF_TOKEN: 'x' },
        },
      ],
    });
    expect(c.listen).toEqual({ host: '::1', port: 0 });
    expect(c.deployments[0]).toMatchObject({ replicas: 0, gpusPerReplica: 8, gpuMemoryUtilization: 0.85 });
    expect(c.deployments[0]?.engineArgs).toEqual(['--sim-ttft-ms', '20']);
    expect(c.deployments[0]?.engineEnv).toEqual({ HF_TOKEN: 'x' });
  });

  it.each([
    [
      '405B BF16 on 2x8 H100: TP8 x PP2',
      { model: 'meta-llama/Llama-3.1-405B-Instruct', plan: { gpus: '2x8xh100-80g', dtype: 'bf16' } },
      { tensorParallel: 8, pipelineParallel: 2, nodes: 2, gpusPerNode: 8, gpuType: 'h100-80g' },
    ],
    [
      '405B FP8 checkpoint on 8 H100: TP8, no --quantization (pre-quantized)',
      { model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', plan: { gpus: '1x8xh100-80g', dtype: 'fp8' } },
      { tensorParallel: 8, pipelineParallel: 1, nodes: 1, gpuType: 'h100-80g' },
    ],
    [
      '405B BF16 on 8 H200: TP8 on one node',
      { model: 'meta-llama/Llama-3.1-405B-Instruct', plan: { gpus: '2x8xh200-141g', dtype: 'bf16' } },
      { tensorParallel: 8, pipelineParallel: 1, nodes: 1, gpuType: 'h200-141g' },
    ],
  ])('plan: %s', (_name, extra, expected) => {
    const dep = compileControllerConfig({
      deployments: [{ ...minimal, maxModelLen: 16384, ...extra }],
    }).deployments[0];
    expect(dep).toMatchObject(expected);
    expect(dep?.quantization).toBeUndefined();
    expect(dep?.planSummary).toMatch(/^(BF16|FP8) TP8/);
  });

  const d = (extra: Record<string, unknown>) => ({ deployments: [{ ...minimal, ...extra }] });
  it.each([
    ['root not a mapping', [1, 2], '(root)', 'must be a mapping'],
    ['unknown top-level field', { ...d({}), replicas: 2 }, 'replicas', 'unknown field'],
    ['listen not host:port', { ...d({}), listen: 'localhost' }, 'listen', 'must be host:port'],
    ['listen port too big', { ...d({}), listen: 'a:70000' }, 'listen', 'must be host:port'],
    ['listen not a string', { ...d({}), listen: 7070 }, 'listen', 'must be a string'],
    [
      'redis not a URL',
      { ...d({}), redis: '127.0.0.1:6379' },
      'redis',
      'must be a redis:// or rediss:// URL',
    ],
    ['queue not a mapping', { ...d({}), queue: 5 }, 'queue', 'must be a mapping'],
    ['queue unknown field', { ...d({}), queue: { lease: 1 } }, 'queue.lease', 'unknown field'],
    ['queue lease zero', { ...d({}), queue: { leaseMs: 0 } }, 'queue.leaseMs', 'must be a positive integer'],
    [
      'queue grace negative',
      { ...d({}), queue: { detachGraceMs: -1 } },
      'queue.detachGraceMs',
      'must be a non-negative integer',
    ],
    [
      'heartbeat zero',
      { ...d({}), heartbeatIntervalMs: 0 },
      'heartbeatIntervalMs',
      'must be a positive integer',
    ],
    [
      'timeout not above heartbeat',
      { ...d({}), workerTimeoutMs: 1000 },
      'workerTimeoutMs',
      'must be greater than',
    ],
    [
      'timeout a string',
      { ...d({}), workerTimeoutMs: '3s' },
      'workerTimeoutMs',
      'must be a positive integer',
    ],
    ['no deployments', {}, 'deployments', 'must be a non-empty list'],
    ['empty deployments', { deployments: [] }, 'deployments', 'must be a non-empty list'],
    ['deployment not a mapping', { deployments: ['x'] }, 'deployments[0]', 'must be a mapping'],
    ['missing name', { deployments: [{ model: 'm' }] }, 'deployments[0].name', 'is required'],
    ['bad name', d({ name: 'Llama 8B' }), 'deployments[0].name', 'must start with'],
    ['missing model', { deployments: [{ name: 'a' }] }, 'deployments[0].model', 'is required'],
    ['unknown deployment field', d({ replica: 2 }), 'deployments[0].replica', 'unknown field'],
    ['negative replicas', d({ replicas: -1 }), 'deployments[0].replicas', 'must be a non-negative integer'],
    [
      'fractional gpus',
      d({ gpusPerReplica: 1.5 }),
      'deployments[0].gpusPerReplica',
      'must be a positive integer',
    ],
    ['zero maxModelLen', d({ maxModelLen: 0 }), 'deployments[0].maxModelLen', 'must be a positive integer'],
    [
      'string maxNumSeqs',
      d({ maxNumSeqs: '256' }),
      'deployments[0].maxNumSeqs',
      'must be a positive integer',
    ],
    [
      'utilization above 1',
      d({ gpuMemoryUtilization: 1.2 }),
      'deployments[0].gpuMemoryUtilization',
      'in (0, 1]',
    ],
    ['utilization zero', d({ gpuMemoryUtilization: 0 }), 'deployments[0].gpuMemoryUtilization', 'in (0, 1]'],
    [
      'default max tokens fills context',
      d({ maxModelLen: 100, defaultMaxTokens: 100 }),
      'deployments[0].defaultMaxTokens',
      'less than maxModelLen',
    ],
    [
      'zero maxPromptBytes',
      d({ maxPromptBytes: 0 }),
      'deployments[0].maxPromptBytes',
      'must be a positive integer',
    ],
    [
      'engineArgs not a list',
      d({ engineArgs: '--x' }),
      'deployments[0].engineArgs',
      'must be a list of strings',
    ],
    [
      'engineArgs number',
      d({ engineArgs: ['--sim-ttft-ms', 20] }),
      'deployments[0].engineArgs[1]',
      'must be a string',
    ],
    [
      'engineArgs --port',
      d({ engineArgs: ['--port=8000'] }),
      'deployments[0].engineArgs[0]',
      'set by the worker',
    ],
    [
      'engineArgs parallelism',
      d({ engineArgs: ['--tensor-parallel-size', '8'] }),
      'deployments[0].engineArgs[0]',
      'set by the controller',
    ],
    [
      'gpusPerReplica disagrees with TP x PP',
      d({ gpusPerReplica: 8, tensorParallel: 8, pipelineParallel: 2 }),
      'deployments[0].gpusPerReplica',
      'must equal tensorParallel x pipelineParallel (16)',
    ],
    [
      'gpusPerReplica with PP',
      d({ gpusPerReplica: 16, pipelineParallel: 2 }),
      'deployments[0].gpusPerReplica',
      'single-node shorthand',
    ],
    ['zero PP', d({ pipelineParallel: 0 }), 'deployments[0].pipelineParallel', 'must be a positive integer'],
    [
      'TP a string',
      d({ tensorParallel: '8' }),
      'deployments[0].tensorParallel',
      'must be a positive integer',
    ],
    ['empty gpuType', d({ gpuType: '' }), 'deployments[0].gpuType', 'must be a non-empty string'],
    [
      'topologyKey a number',
      d({ topologyKey: 1 }),
      'deployments[0].topologyKey',
      'must be a non-empty string',
    ],
    ['quantization int4', d({ quantization: 'int4' }), 'deployments[0].quantization', 'must be fp8'],
    ['groups not a mapping', { ...d({}), groups: 3 }, 'groups', 'must be a mapping'],
    ['groups unknown field', { ...d({}), groups: { restarts: 1 } }, 'groups.restarts', 'unknown field'],
    [
      'negative maxRestarts',
      { ...d({}), groups: { maxRestarts: -1 } },
      'groups.maxRestarts',
      'must be a non-negative integer',
    ],
    [
      'backoff max below base',
      { ...d({}), groups: { backoffBaseMs: 5000, backoffMaxMs: 1000 } },
      'groups.backoffMaxMs',
      'must be >= groups.backoffBaseMs',
    ],
    [
      'master port too low',
      { ...d({}), groups: { masterPortBase: 80 } },
      'groups.masterPortBase',
      'in 1024..60000',
    ],
    [
      'plan that fits nowhere',
      d({ model: 'meta-llama/Llama-3.1-405B-Instruct', plan: { gpus: '1x8xh100-80g', dtype: 'bf16' } }),
      'deployments[0].plan',
      'BF16 TP8 on H100-80G: 94.5 GiB weights per GPU > 71.7 GiB usable',
    ],
    ['plan bad gpus', d({ plan: { gpus: '8xh100' } }), 'deployments[0].plan.gpus', 'NODESxGPUSxTYPE'],
    ['plan unknown gpu', d({ plan: { gpus: '1x8xz9' } }), 'deployments[0].plan.gpus', 'unknown GPU type z9'],
    [
      'plan bad dtype',
      d({ plan: { gpus: '1x8xh100-80g', dtype: 'int4' } }),
      'deployments[0].plan.dtype',
      'must be',
    ],
    [
      'plan unknown model',
      d({ model: 'org/x', plan: { gpus: '1x8xh100-80g' } }),
      'deployments[0].plan',
      'no built-in shape',
    ],
    [
      'plan with tensorParallel',
      d({ tensorParallel: 8, plan: { gpus: '1x8xh100-80g' } }),
      'deployments[0].tensorParallel',
      'cannot be given with plan',
    ],
    ['engineEnv not a mapping', d({ engineEnv: ['A=1'] }), 'deployments[0].engineEnv', 'must be a mapping'],
    ['engineEnv number', d({ engineEnv: { A: 1 } }), 'deployments[0].engineEnv.A', 'must be a string'],
    [
      'duplicate names',
      { deployments: [minimal, minimal] },
      'deployments[1].name',
      'duplicate of deployments[0].name',
    ],
  ])('%s -> %s', (_name, input, path, message) => {
    const errors = errorsOf(input);
    const hit = errors.find((e) => e.path === path);
    expect(hit, JSON.stringify(errors)).toBeDefined();
    expect(hit?.message).toContain(message);
  });

  it('collects every error at once, each with its path', () => {
    const errors = errorsOf({
      heartbeatIntervalMs: -1,
      deployments: [
        { name: 'a', model: 'm', maxModelLen: 0 },
        { model: 'm', replicas: 'two' },
      ],
    });
    expect(errors.map((e) => e.path)).toEqual([
      'heartbeatIntervalMs',
      'deployments[0].maxModelLen',
      'deployments[1].name',
      'deployments[1].replicas',
    ]);
  });

  it('names the path in the error message', () => {
    expect(() => compileControllerConfig(d({ maxModelLen: 0 }))).toThrow(
      'deployments[0].maxModelLen: must be a positive integer',
    );
  });
});

describe('parseControllerConfig', () => {
  it('accepts the documented example file, whose values are the defaults but replicas', () => {
    const text = readFileSync(
      new URL('../../../../controller/config/deployments.example.yaml', import.meta.url),
      'utf8',
    );
    const c = parseControllerConfig(text, 'deployments.example.yaml');
    expect(c).toEqual(compileControllerConfig({ deployments: [{ ...minimal, replicas: 2 }] }));
  });

  it('reads YAML and JSON alike', () => {
    const yaml = parseControllerConfig(
      `deployments:\n  - name: a\n    model: m\n    replicas: 2\n`,
      'x.yaml',
    );
    const json = parseControllerConfig(
      JSON.stringify({ deployments: [{ name: 'a', model: 'm', replicas: 2 }] }),
      'x.json',
    );
    expect(yaml).toEqual(json);
  });

  it('reports a syntax error as a validation error of the file', () => {
    expect(() => parseControllerConfig('deployments: [\n', 'bad.yaml')).toThrow(
      /\(file\): not valid YAML\/JSON/,
    );
  });
});

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:7070', { host: '::1', port: 7070 }],
    ['controller:7070', { host: 'controller', port: 7070 }],
    [':7070', 'must be host:port with a port in 0..65535'],
    ['a:b', 'must be host:port with a port in 0..65535'],
  ])('%s', (input, expected) => {
    expect(parseListen(input)).toEqual(expected);
  });
});
