/**
 * The controller with the real worker processes (worker/main.ts) and the worker's fake engine fixture instead
 * of the simulator: launch -> spawn -> ready -> route -> stream -> cancel, and a worker that freezes (SIGSTOP)
 * is dropped from routing, then comes back (SIGCONT), re-registers and serves again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceClient } from '../../../cli/clients.ts';
import { REPO_ROOT } from '../../../cli/local-cluster.ts';
import { ManagedProcess } from '../../../cli/managed-process.ts';
import { createLogger } from '../../../common/log.ts';
import { compileControllerConfig } from '../../../controller/config/controller-config.ts';
import { clusterStatus } from '../../../controller/control/control-service.ts';
import { type RunningController, startController } from '../../../controller/controller.ts';
import type { GenerateRequest, InferenceClient } from '../../../proto/gen/corral/v1/inference.ts';
import { EngineState } from '../../../proto/gen/corral/v1/worker.ts';
import { collect } from '../../helpers/grpc-stream.ts';
import { useRedis } from '../../helpers/use-redis.ts';
import { generateRequest, until } from './fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';
const config = compileControllerConfig({
  listen: '127.0.0.1:0',
  heartbeatIntervalMs: 300,
  workerTimeoutMs: 1500,
  deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 2, maxModelLen: 4096 }],
});

let dir: string;
const redis = useRedis();
let controller: RunningController;
let client: InferenceClient;
const workers = new Map<string, ManagedProcess>();

function status_() {
  return clusterStatus({
    deployments: config.deployments,
    registry: controller.registry,
    requests: controller.requests,
    clock: { now: Date.now },
  });
}

function request(over: Partial<GenerateRequest> = {}): GenerateRequest {
  return generateRequest({
    model: MODEL,
    input: { $case: 'prompt', value: 'Tell me about Paris.' },
    ...over,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-controller-worker-'));
  controller = await startController(
    { ...config, redis: redis.url },
    { log: createLogger('controller', { level: 'warn' }) },
  );
  client = inferenceClient(controller.address);
  for (const id of ['n1', 'n2']) {
    const w = new ManagedProcess(
      `worker ${id}`,
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'worker/main.ts'),
        '--controller',
        controller.address,
        '--listen',
        '127.0.0.1:0',
        '--node-name',
        id,
        '--worker-id',
        id,
        '--gpus',
        '2',
        '--gpu-type',
        'h100-80g',
        '--engine-command',
        join(REPO_ROOT, 'test/fixtures/worker/fake-engine.mjs'),
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, CORRAL_LOG_LEVEL: 'info', FAKE_TOKEN_MS: '5' },
        logFile: join(dir, `${id}.log`),
      },
    );
    workers.set(id, w);
  }
  await Promise.all([...workers.values()].map((w) => w.waitListening(30_000)));
  await until(
    '2 of 2 ready',
    () => (status_().deployments[0]?.readyReplicas === 2 ? true : undefined),
    30_000,
  );
});

afterAll(async () => {
  client?.close();
  for (const w of workers.values()) w.kill('SIGCONT');
  await Promise.all([...workers.values()].map((w) => w.stop(10_000)));
  await controller?.stop(1000);
  if (process.env.KEEP_LOGS) console.log(dir);
  else rmSync(dir, { recursive: true, force: true });
});

describe('controller with real workers', () => {
  it('streams concurrent generations through both workers with token counts equal to usage', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        collect(
          client.generate(request({ requestId: `r-${i}`, maxTokens: 4 + i }), new Metadata(), {
            deadline: Date.now() + 30_000,
          }),
        ),
      ),
    );
    for (const [i, r] of results.entries()) {
      expect(r.requestId).toBe(`r-${i}`);
      expect(r.usage?.completionTokens).toBe(4 + i);
      expect(r.tokens).toBe(4 + i);
    }
    expect(controller.requests.size).toBe(0);
  });

  it('a cancelled stream stops the engine request', async () => {
    // The fake engine serves a 1000-token context whatever --max-model-len says; 900 tokens at 5 ms is 4.5 s.
    const call = client.generate(request({ requestId: 'long', maxTokens: 900 }), new Metadata());
    const ended = new Promise<number>((resolve) => call.on('error', (e: ServiceError) => resolve(e.code)));
    const first = await Promise.race([
      new Promise((resolve) => call.once('data', () => resolve('data'))),
      ended,
    ]);
    expect(first).toBe('data');
    call.cancel();
    expect(await ended).toBe(status.CANCELLED);
    const engines = status_().workers.flatMap((w) => w.engines);
    for (const e of engines) {
      await until(`${e.engineId} idle`, async () => {
        const text = await (await fetch(`http://${e.httpAddress}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('vllm:num_requests_running'));
        return Number(line?.split(' ').pop()) === 0 ? true : undefined;
      });
    }
  });

  it('a frozen worker leaves routing; after it thaws it re-registers and serves again', async () => {
    const n1 = workers.get('n1');
    n1?.kill('SIGSTOP');
    await until('n1 lost', () =>
      status_().workers.find((w) => w.inventory?.workerId === 'n1')?.connected === false ? true : undefined,
    );
    expect(status_().deployments[0]?.readyReplicas).toBe(1);
    const served = await Promise.all(
      Array.from({ length: 4 }, () =>
        collect(client.generate(request(), new Metadata(), { deadline: Date.now() + 30_000 })),
      ),
    );
    expect(served.every((r) => r.usage?.completionTokens === 8)).toBe(true);

    n1?.kill('SIGCONT');
    await until(
      'n1 back and ready',
      () => {
        const w = status_().workers.find((x) => x.inventory?.workerId === 'n1');
        return w?.connected && w.engines[0]?.state === EngineState.ENGINE_STATE_READY ? true : undefined;
      },
      30_000,
    );
    expect(status_().deployments[0]?.readyReplicas).toBe(2);
    // The engine kept running through the freeze: the worker reports it, the controller does not relaunch it.
    expect(
      status_()
        .workers.flatMap((w) => w.engines)
        .every((e) => e.restarts === 0),
    ).toBe(true);
  });
});
