import { describe, expect, it } from 'vitest';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { engineArgs } from '../../../../controller/launcher/engine-args.ts';
import { type LaunchWorkerView, planLaunches } from '../../../../controller/launcher/launch-plan.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';

const S = EngineState;
const config = compileControllerConfig({
  deployments: [
    { name: 'small', model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 2, gpusPerReplica: 1 },
    { name: 'big', model: 'meta-llama/Llama-3.1-70B-Instruct', replicas: 1, gpusPerReplica: 4 },
  ],
});
const [small, big] = config.deployments as [(typeof config.deployments)[0], (typeof config.deployments)[0]];

const w = (workerId: string, over: Partial<LaunchWorkerView> = {}): LaunchWorkerView => ({
  workerId,
  connected: true,
  draining: false,
  gpuCount: 8,
  engines: [],
  pending: [],
  ...over,
});
const summary = (actions: ReturnType<typeof planLaunches>) =>
  actions.map((a) => `${a.t} ${a.engineId}`).sort();

describe('planLaunches', () => {
  it('places each replica on its own worker, emptiest first', () => {
    expect(summary(planLaunches([small], [w('n1'), w('n2'), w('n3')]))).toEqual([
      'launch small-n1',
      'launch small-n2',
    ]);
  });

  it('launches nothing when every replica is starting, ready or restarting', () => {
    const workers = [
      w('n1', { engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_READY }] }),
      w('n2', { engines: [{ engineId: 'small-n2', state: S.ENGINE_STATE_EXITED }] }),
      w('n3'),
    ];
    expect(planLaunches([small], workers)).toEqual([]);
  });

  it('counts launches sent but not yet reported', () => {
    expect(
      planLaunches(
        [small],
        [w('n1', { pending: ['small-n1'] }), w('n2', { pending: ['small-n2'] }), w('n3')],
      ),
    ).toEqual([]);
  });

  it('replaces a replica lost with its worker when another worker has room', () => {
    const workers = [
      w('n1', { connected: false, engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_READY }] }),
      w('n2', { engines: [{ engineId: 'small-n2', state: S.ENGINE_STATE_READY }] }),
      w('n3'),
    ];
    expect(summary(planLaunches([small], workers))).toEqual(['launch small-n3']);
  });

  it('does not retry on a worker where the engine FAILED, nor launch on draining or lost workers', () => {
    const workers = [
      w('n1', { engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_FAILED }] }),
      w('n2', { draining: true }),
      w('n3', { connected: false }),
      w('n4'),
    ];
    expect(summary(planLaunches([small], workers))).toEqual(['launch small-n4']);
  });

  it('relaunches on a worker whose engine was STOPPED', () => {
    const workers = [w('n1', { engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_STOPPED }] })];
    expect(summary(planLaunches([{ ...small, replicas: 1 }], workers))).toEqual(['launch small-n1']);
  });

  it('respects free GPUs across deployments', () => {
    // n1 has 4 GPUs: big takes all four, small must go elsewhere; n2 has 1 GPU, enough for one small.
    const workers = [w('n1', { gpuCount: 4 }), w('n2', { gpuCount: 1 })];
    expect(summary(planLaunches([big, small], workers))).toEqual(['launch big-n1', 'launch small-n2']);
  });

  it('leaves replicas unplaced when no worker has room', () => {
    const workers = [w('n1', { gpuCount: 2 })];
    expect(planLaunches([big], workers)).toEqual([]);
  });

  it('counts GPUs held by a stopping engine as used', () => {
    const workers = [
      w('n1', { gpuCount: 4, engines: [{ engineId: 'big-n1', state: S.ENGINE_STATE_STOPPING }] }),
    ];
    expect(
      planLaunches(
        [
          { ...big, replicas: 0 },
          { ...small, replicas: 1 },
        ],
        workers,
      ),
    ).toEqual([]);
  });

  it('stops the surplus when a lost worker returns, keeping ready engines', () => {
    const workers = [
      w('n1', { engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_READY }] }),
      w('n2', { engines: [{ engineId: 'small-n2', state: S.ENGINE_STATE_READY }] }),
      w('n3', { engines: [{ engineId: 'small-n3', state: S.ENGINE_STATE_STARTING }] }),
    ];
    const actions = planLaunches([small], workers);
    expect(summary(actions)).toEqual(['stop small-n3']);
    expect(actions[0]).toMatchObject({ reason: 'small has 3 replicas, wants 2' });
  });

  it('scales to zero by stopping every engine', () => {
    const workers = [w('n1', { engines: [{ engineId: 'small-n1', state: S.ENGINE_STATE_READY }] })];
    expect(summary(planLaunches([{ ...small, replicas: 0 }], workers))).toEqual(['stop small-n1']);
  });

  it('ignores engines it does not manage', () => {
    const workers = [
      w('n1', { gpuCount: 1, engines: [{ engineId: 'someone-else', state: S.ENGINE_STATE_READY }] }),
    ];
    expect(summary(planLaunches([{ ...small, replicas: 1 }], workers))).toEqual(['launch small-n1']);
  });
});

describe('engineArgs', () => {
  it('is a vllm serve command line without host and port', () => {
    expect(engineArgs({ ...small, engineArgs: ['--sim-ttft-ms', '20'] })).toEqual([
      'meta-llama/Llama-3.1-8B-Instruct',
      '--served-model-name',
      'small',
      '--tensor-parallel-size',
      '1',
      '--max-model-len',
      '8192',
      '--max-num-seqs',
      '256',
      '--gpu-memory-utilization',
      '0.9',
      '--sim-ttft-ms',
      '20',
    ]);
  });
});
