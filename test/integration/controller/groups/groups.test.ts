/**
 * Multi-node groups in the live controller, over real gRPC on 127.0.0.1 with fake workers: the launch of every
 * rank (vLLM's multi-node flags, master address = the leader's engine host, a port per group, group_member),
 * routing only to ready groups through their leader, and healing: a lost follower takes its group out of
 * routing and gets the leader's rank stopped, and the group is rebuilt with new engine ids when the worker returns.
 */
import { Metadata } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { controlClient, fetchStatus, inferenceClient } from '../../../../cli/clients.ts';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import type { ClusterStatus } from '../../../../proto/gen/corral/v1/control.ts';
import type { GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { FakeWorker, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-405b-instruct';
const config = (replicas: number) =>
  compileControllerConfig({
    listen: '127.0.0.1:0',
    heartbeatIntervalMs: 200,
    workerTimeoutMs: 600,
    groups: { maxRestarts: 1, backoffBaseMs: 200, backoffMaxMs: 400, masterPortBase: 40000 },
    deployments: [
      {
        name: MODEL,
        model: 'meta-llama/Llama-3.1-405B-Instruct',
        replicas,
        tensorParallel: 8,
        pipelineParallel: 2,
        gpuType: 'h100-80g',
        maxModelLen: 8192,
        engineArgs: ['--sim-ttft-ms', '20'],
        engineEnv: { SIM_SEED: '7' },
      },
    ],
  });

let controller: RunningController | undefined;
const workers: FakeWorker[] = [];
const redis = useRedis();

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await controller?.stop(1000);
  controller = undefined;
});

/** Starts the controller and registers workers n1..nN, each with its own engine host 10.0.0.<i>. */
async function cluster(n: number, replicas = 2): Promise<FakeWorker[]> {
  controller = await startController(
    { ...config(replicas), redis: redis.url },
    { log: silentLogger, random: () => 0, redisPrefix: testPrefix('groups') },
  );
  const out: FakeWorker[] = [];
  for (let i = 1; i <= n; i++) out.push(await join(`n${i}`, `10.0.0.${i}`));
  return out;
}

async function join(id: string, engineHost: string): Promise<FakeWorker> {
  const w = await FakeWorker.start(controller?.address ?? '', id);
  w.honourStops = true;
  workers.push(w);
  await w.register({ msg: { $case: 'hello', value: { inventory: w.inventory({ engineHost }) } } });
  return w;
}

async function status(): Promise<ClusterStatus> {
  const client = controlClient(controller?.address ?? '');
  try {
    return await fetchStatus(client);
  } finally {
    client.close();
  }
}

function statesOf(s: ClusterStatus): string[] {
  return s.groups.map((g) => `${g.id}:${g.state}`);
}

async function generate(requestId: string) {
  const client = inferenceClient(controller?.address ?? '');
  try {
    const req: GenerateRequest = {
      model: MODEL,
      requestId,
      input: { $case: 'prompt', value: 'Hello' },
      maxTokens: 4,
      sampling: undefined,
      priority: 0,
      returnTokenIds: false,
      priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    };
    return await collect(client.generate(req, new Metadata(), { deadline: Date.now() + 5000 }));
  } finally {
    client.close();
  }
}

const ready = (s: ClusterStatus) => (s.deployments[0]?.readyReplicas === 2 ? s : undefined);

describe('multi-node groups', () => {
  it('launches every rank with the multi-node flags, the leader as master, one port per group', async () => {
    const [n1, n2, n3, n4] = await cluster(4);
    const s = await until('two ready groups', async () => ready(await status()));
    expect(statesOf(s)).toEqual([`${MODEL}-g1:ready`, `${MODEL}-g2:ready`]);
    expect(s.groups[0]?.ranks).toEqual([
      { rank: 0, workerId: 'n1', engineId: `${MODEL}-g1.a1.r0` },
      { rank: 1, workerId: 'n2', engineId: `${MODEL}-g1.a1.r1` },
    ]);
    const base = [
      'meta-llama/Llama-3.1-405B-Instruct',
      '--served-model-name',
      MODEL,
      '--tensor-parallel-size',
      '8',
      '--pipeline-parallel-size',
      '2',
      '--max-model-len',
      '8192',
      '--max-num-seqs',
      '256',
      '--gpu-memory-utilization',
      '0.9',
      '--nnodes',
      '2',
    ];
    expect(n1?.launches()).toEqual([
      {
        $case: 'launch',
        value: {
          engineId: `${MODEL}-g1.a1.r0`,
          model: 'meta-llama/Llama-3.1-405B-Instruct',
          args: [
            ...base,
            '--node-rank',
            '0',
            '--master-addr',
            '10.0.0.1',
            '--master-port',
            '40001',
            '--sim-ttft-ms',
            '20',
          ],
          env: { SIM_SEED: '7' },
          gpus: 8,
          headless: false,
          groupMember: true,
        },
      },
    ]);
    expect(n2?.launches()[0]).toMatchObject({
      value: {
        engineId: `${MODEL}-g1.a1.r1`,
        args: [
          ...base,
          '--node-rank',
          '1',
          '--master-addr',
          '10.0.0.1',
          '--master-port',
          '40001',
          '--headless',
          '--sim-ttft-ms',
          '20',
        ],
        headless: true,
        groupMember: true,
      },
    });
    expect(n4?.launches()[0]).toMatchObject({
      value: { engineId: `${MODEL}-g2.a1.r1`, args: expect.arrayContaining(['10.0.0.3', '40002']) },
    });
    // Requests go to the leaders (rank 0), never to a headless rank.
    await generate('a');
    await generate('b');
    expect([...n1!.calls, ...n3!.calls].map((c) => c.request.engineId)).toContain(`${MODEL}-g1.a1.r0`);
    expect(n2?.calls).toHaveLength(0);
    expect(n4?.calls).toHaveLength(0);
  });

  it('a lost follower takes its group out at once, stops the leader rank, and the group is rebuilt when it returns', async () => {
    const [n1, n2, n3] = await cluster(4);
    await until('two ready groups', async () => ready(await status()));

    await n2!.stop();
    const down = await until('g1 down', async () => {
      const s = await status();
      return s.groups[0]?.state === 'pending' ? s : undefined;
    });
    expect(down.deployments[0]?.readyReplicas).toBe(1);
    expect(down.groups[0]?.lastFailure).toBe('rank 1 lost: worker n2 stopped heartbeating');
    expect(down.groups[1]?.state).toBe('ready');
    await until('the leader rank stopped', () =>
      n1!.stops().includes(`${MODEL}-g1.a1.r0`) ? true : undefined,
    );
    // Requests keep flowing, to the other group.
    n3!.calls.length = 0;
    for (const id of ['c', 'd', 'e']) await generate(id);
    expect(n3!.calls.map((c) => c.request.engineId)).toEqual(Array(3).fill(`${MODEL}-g2.a1.r0`));

    // n2 comes back: g1 is rebuilt with new engine ids (its past attempt's reports are never mistaken).
    await join('n2', '10.0.0.2');
    const back = await until('g1 ready again', async () => ready(await status()));
    expect(back.groups[0]).toMatchObject({ state: 'ready', restarts: 1, attempt: 2 });
    expect(back.groups[0]?.ranks.map((r) => r.engineId)).toEqual([`${MODEL}-g1.a2.r0`, `${MODEL}-g1.a2.r1`]);
    expect(back.groups[0]?.lastFailure).toBe('rank 1 lost: worker n2 stopped heartbeating');
  });

  it('an exited rank breaks its group; past maxRestarts the group is failed with the reason in Status', async () => {
    const [n1, n2] = await cluster(2, 1);
    await until('one ready group', async () =>
      (await status()).groups[0]?.state === 'ready' ? true : undefined,
    );

    n2!.setEngine(`${MODEL}-g1.a1.r1`, {
      state: EngineState.ENGINE_STATE_FAILED,
      detail: 'exited with code 1',
    });
    await until('rebuilt once', async () => ((await status()).groups[0]?.attempt === 2 ? true : undefined));
    expect(n1!.stops()).toContain(`${MODEL}-g1.a1.r0`);
    await until('a2 ranks launched', () => (n2!.engines.has(`${MODEL}-g1.a2.r1`) ? true : undefined));
    n2!.setEngine(`${MODEL}-g1.a2.r1`, {
      state: EngineState.ENGINE_STATE_FAILED,
      detail: 'exited with code 1',
    });
    const failed = await until('g1 failed', async () => {
      const x = await status();
      return x.groups[0]?.state === 'failed' ? x : undefined;
    });
    expect(failed.groups[0]?.lastFailure).toBe(
      `rank 1 lost: engine ${MODEL}-g1.a2.r1 on n2 failed (exited with code 1); gave up after 1 rebuilds`,
    );
    expect(failed.deployments[0]?.readyReplicas).toBe(0);
  });
});
