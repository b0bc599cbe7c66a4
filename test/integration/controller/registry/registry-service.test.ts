/**
 * The controller's Registry service and launcher over real gRPC on 127.0.0.1, with fake workers written here:
 * Hello/Welcome, refusals, launch directives and their args, relaunch after a worker is lost, Control.Status.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { controlClient, fetchStatus } from '../../../../cli/clients.ts';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { FakeWorker, until } from '../fake-worker.ts';

const config = compileControllerConfig({
  listen: '127.0.0.1:0',
  heartbeatIntervalMs: 200,
  workerTimeoutMs: 600,
  deployments: [
    {
      name: 'llama-3.1-8b-instruct',
      model: 'meta-llama/Llama-3.1-8B-Instruct',
      replicas: 2,
      gpusPerReplica: 2,
      maxModelLen: 4096,
      maxNumSeqs: 64,
      engineArgs: ['--sim-ttft-ms', '20'],
      engineEnv: { SIM_SEED: '7' },
    },
  ],
});

let controller: RunningController | undefined;
const workers: FakeWorker[] = [];
const redis = useRedis();

async function setup(): Promise<RunningController> {
  controller = await startController(
    { ...config, redis: redis.url },
    { log: silentLogger, redisPrefix: testPrefix('registry') },
  );
  return controller;
}
async function worker(id: string, gpus = 8): Promise<FakeWorker> {
  const w = await FakeWorker.start(controller?.address ?? '', id, gpus);
  workers.push(w);
  return w;
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await controller?.stop(1000);
  controller = undefined;
});

describe('Registry.Register', () => {
  it('answers Hello with Welcome carrying the heartbeat interval', async () => {
    await setup();
    const w = await worker('n1');
    const first = await w.register();
    expect(first.msg).toEqual({ $case: 'welcome', value: { heartbeatIntervalMs: 200 } });
  });

  it('refuses a second live stream for the same worker id with ALREADY_EXISTS naming the first peer', async () => {
    await setup();
    const a = await worker('n1');
    await a.register();
    const b = await worker('n1');
    const e = await b.register().then(
      () => undefined,
      (x: { code: number; details: string }) => x,
    );
    expect(e?.code).toBe(status.ALREADY_EXISTS);
    expect(e?.details).toMatch(/^worker n1 is already registered \(connected from .*127\.0\.0\.1:\d+\)$/);
    // The first stream is unaffected.
    expect((await fetchStatusOnce()).workers.filter((x) => x.connected)).toHaveLength(1);
  });

  it('requires Hello first: INVALID_ARGUMENT and the stream ends', async () => {
    await setup();
    const w = await worker('n1');
    const e = await w
      .register({ msg: { $case: 'heartbeat', value: { engines: [], sentAtMs: 0, draining: false } } })
      .then(
        () => undefined,
        (x: { code: number; details: string }) => x,
      );
    expect(e?.code).toBe(status.INVALID_ARGUMENT);
    expect(e?.details).toBe('the first message on Registry.Register must be hello, got heartbeat');
  });

  it('refuses an invalid inventory with every problem and its path', async () => {
    await setup();
    const w = await worker('n1');
    const bad = w.inventory({ address: '', gpus: { count: 0, type: 'h100-80g', memoryBytes: 0 } });
    const e = await w.register({ msg: { $case: 'hello', value: { inventory: bad } } }).then(
      () => undefined,
      (x: { code: number; details: string }) => x,
    );
    expect(e?.code).toBe(status.INVALID_ARGUMENT);
    expect(e?.details).toBe(
      'invalid worker inventory: hello.inventory.address: must be host:port, got ""; hello.inventory.gpus.count: must be a positive integer',
    );
  });
});

async function fetchStatusOnce() {
  const client = controlClient(controller?.address ?? '');
  try {
    return await fetchStatus(client);
  } finally {
    client.close();
  }
}

describe('launcher', () => {
  it('sends one launch per worker with the vLLM serve args, env and GPUs', async () => {
    await setup();
    const n1 = await worker('n1');
    const n2 = await worker('n2');
    await n1.register();
    await n2.register();
    const launch = await until('n1 launch', () => n1.launches()[0]);
    await until('n2 launch', () => n2.launches()[0]);
    expect(launch).toEqual({
      $case: 'launch',
      value: {
        engineId: 'llama-3.1-8b-instruct-n1',
        model: 'meta-llama/Llama-3.1-8B-Instruct',
        args: [
          'meta-llama/Llama-3.1-8B-Instruct',
          '--served-model-name',
          'llama-3.1-8b-instruct',
          '--tensor-parallel-size',
          '2',
          '--max-model-len',
          '4096',
          '--max-num-seqs',
          '64',
          '--gpu-memory-utilization',
          '0.9',
          '--sim-ttft-ms',
          '20',
        ],
        env: { SIM_SEED: '7' },
        gpus: 2,
        headless: false,
      },
    });
    const s = await until('both replicas ready', async () => {
      const st = await fetchStatusOnce();
      return st.deployments[0]?.readyReplicas === 2 ? st : undefined;
    });
    expect(s.deployments[0]).toMatchObject({
      name: 'llama-3.1-8b-instruct',
      desiredReplicas: 2,
      outstandingRequests: 0,
    });
    // Level-triggered, but not repetitive: heartbeats keep coming and no launch is sent twice.
    await new Promise((r) => setTimeout(r, 500));
    expect(n1.launches()).toHaveLength(1);
    expect(n2.launches()).toHaveLength(1);
  });

  it('does not launch on a worker without enough GPUs', async () => {
    await setup();
    const small = await worker('n1', 1);
    await small.register();
    await new Promise((r) => setTimeout(r, 400));
    expect(small.launches()).toHaveLength(0);
  });

  it('a silent worker is marked lost, and its replica is relaunched on a worker with room', async () => {
    await setup();
    const [n1, n2] = [await worker('n1'), await worker('n2')];
    await n1.register();
    await n2.register();
    await until('two launches', () => (n1.launches().length + n2.launches().length === 2 ? true : undefined));
    const n3 = await worker('n3');
    await n3.register();
    await new Promise((r) => setTimeout(r, 300));
    expect(n3.launches()).toHaveLength(0);

    n1.silence();
    const ended = await n1.ended();
    expect(ended?.code).toBe(status.UNAVAILABLE);
    expect(ended?.details).toMatch(/^no heartbeat for \d+ ms; registration dropped$/);
    const launch = await until('relaunch on n3', () => n3.launches()[0]);
    expect(launch).toMatchObject({ value: { engineId: 'llama-3.1-8b-instruct-n3' } });
    const s = await fetchStatusOnce();
    const lost = s.workers.find((w) => w.inventory?.workerId === 'n1');
    expect(lost?.connected).toBe(false);
  });

  it('an engine the worker reports FAILED stays visible in Control.Status with its detail and exit', async () => {
    await setup();
    const n1 = await worker('n1');
    await n1.register();
    await until('launch', () => n1.launches()[0]);
    n1.setEngine('llama-3.1-8b-instruct-n1', {
      state: EngineState.ENGINE_STATE_FAILED,
      detail: 'never became healthy within 600000 ms',
      lastExit: {
        code: 1,
        signal: '',
        logTail: ['RuntimeError: Engine core initialization failed'],
        atMs: 5,
      },
    });
    const engine = await until('failed engine in status', async () => {
      const e = (await fetchStatusOnce()).workers[0]?.engines[0];
      return e?.state === EngineState.ENGINE_STATE_FAILED ? e : undefined;
    });
    expect(engine.detail).toBe('never became healthy within 600000 ms');
    expect(engine.lastExit?.logTail).toEqual(['RuntimeError: Engine core initialization failed']);
  });
});
