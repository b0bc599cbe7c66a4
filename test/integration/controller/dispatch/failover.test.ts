/**
 * Failover and Resume on real processes: an in-process controller on a real Redis, two worker processes
 * (worker/main.ts) each running the engine simulator. The simulator's output is a pure function of (seed,
 * context), so a request continued on another group by token ids must stream exactly the text of an
 * undisturbed run: that is the check of "no gap, no duplicate" beyond contiguous token indices.
 *   - the engine serving a request crashes mid-stream (POST /sim/fault): the request continues on the other group
 *   - the worker serving a request freezes (SIGSTOP) and is declared lost: same
 *   - Redis is SIGKILLed mid-stream and restarted from its AOF: the request completes
 *   - a client that dropped its stream resumes after the tokens it received
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../../cli/local-cluster.ts';
import { ManagedProcess } from '../../../../cli/managed-process.ts';
import { CorralClient, type GenerationEvent } from '../../../../client/corral-client.ts';
import type { CorralClientError } from '../../../../client/errors.ts';
import { createLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';
const TOKENS = 60;
const params = (seed: number) => ({
  model: MODEL,
  prompt: 'Tell me about the Rocky Mountains.',
  maxTokens: TOKENS,
  seed,
  ignoreEos: true,
});

let dir: string;
const redis = useRedis();
let controller: RunningController;
let corral: CorralClient;
const workers = new Map<string, ManagedProcess>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-failover-'));
  const config = compileControllerConfig({
    listen: '127.0.0.1:0',
    redis: redis.url,
    heartbeatIntervalMs: 200,
    workerTimeoutMs: 1000,
    queue: { leaseMs: 2000, detachGraceMs: 3000 },
    deployments: [
      {
        name: MODEL,
        model: 'meta-llama/Llama-3.1-8B-Instruct',
        replicas: 2,
        maxModelLen: 4096,
        engineArgs: ['--sim-startup-ms', '300', '--sim-ttft-ms', '20', '--sim-itl-ms', '25'],
      },
    ],
  });
  controller = await startController(config, {
    log: createLogger('controller', { level: 'warn' }),
    redisPrefix: testPrefix('failover'),
  });
  corral = new CorralClient({ address: controller.address });
  for (const id of ['n1', 'n2']) {
    const w = new ManagedProcess(
      `worker ${id}`,
      process.execPath,
      [
        ...['--import', 'tsx', join(REPO_ROOT, 'worker/main.ts'), '--controller', controller.address],
        ...['--listen', '127.0.0.1:0', '--node-name', id, '--worker-id', id, '--gpus', '1'],
        ...['--gpu-type', 'h100-80g'],
      ],
      { cwd: REPO_ROOT, env: { ...process.env, CORRAL_LOG_LEVEL: 'info' }, logFile: join(dir, `${id}.log`) },
    );
    workers.set(id, w);
    await w.waitListening(30_000);
  }
  await bothReady();
});

afterAll(async () => {
  corral?.close();
  for (const w of workers.values()) w.kill('SIGCONT');
  await Promise.all([...workers.values()].map((w) => w.stop(10_000)));
  await controller?.stop(1000);
  rmSync(dir, { recursive: true, force: true });
});

async function bothReady(): Promise<void> {
  await until(
    'both engines ready',
    () =>
      controller.registry
        .all()
        .filter((w) => w.conn.t === 'connected' && w.engines[0]?.state === EngineState.ENGINE_STATE_READY)
        .length === 2
        ? true
        : undefined,
    60_000,
  );
}

/** Collects a stream, calling onDelta after each delta (with the tokens received so far). */
async function drain(
  events: AsyncIterable<GenerationEvent>,
  onDelta: (received: number) => Promise<void> | void = () => {},
): Promise<{ text: string; indices: number[]; finished: GenerationEvent | undefined }> {
  const out = { text: '', indices: [] as number[], finished: undefined as GenerationEvent | undefined };
  let received = 0;
  for await (const e of events) {
    if (e.type === 'delta') {
      out.text += e.text;
      for (let i = 0; i < e.tokenCount; i++) out.indices.push(e.index + i);
      received += e.tokenCount;
      await onDelta(received);
    }
    if (e.type === 'finished') out.finished = e;
  }
  return out;
}

const contiguous = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The worker whose engine runs the request now. */
async function servingWorker(requestId: string): Promise<string> {
  return until('the request to be dispatched', () => controller.requests.get(requestId)?.workerId);
}

describe('failover', () => {
  it('a crashed engine: the request continues on the other group with no gap and no duplicate', async () => {
    const reference = await drain(corral.generate(params(11), { requestId: 'reference-crash' }));
    expect(reference.indices).toEqual(contiguous(TOKENS));

    let crashed = '';
    const run = await drain(
      corral.generate(params(11), { requestId: 'crash-mid-stream' }),
      async (received) => {
        if (crashed || received < 10) return;
        crashed = await servingWorker('crash-mid-stream');
        const address = controller.registry.get(crashed)?.engines[0]?.httpAddress;
        const res = await fetch(`http://${address}/sim/fault`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ fault: 'crash' }),
        });
        expect(res.status).toBe(200);
      },
    );
    expect(crashed).not.toBe('');
    expect(run.indices).toEqual(contiguous(TOKENS));
    expect(run.text).toBe(reference.text);
    expect(run.finished).toMatchObject({ usage: { completionTokens: TOKENS } });
    const record = await controller.lanes.lanes.get(MODEL)?.queue.get('crash-mid-stream');
    expect(record).toMatchObject({ state: 'finished', attempts: 2 });
    await bothReady(); // the worker restarts its engine
  });

  it('a frozen worker is declared lost: its request continues on the other group', async () => {
    const reference = await drain(corral.generate(params(12), { requestId: 'reference-freeze' }));
    let frozen = '';
    const run = await drain(
      corral.generate(params(12), { requestId: 'freeze-mid-stream' }),
      async (received) => {
        if (frozen || received < 10) return;
        frozen = await servingWorker('freeze-mid-stream');
        workers.get(frozen)?.kill('SIGSTOP');
      },
    );
    workers.get(frozen)?.kill('SIGCONT');
    expect(run.indices).toEqual(contiguous(TOKENS));
    expect(run.text).toBe(reference.text);
    const record = await controller.lanes.lanes.get(MODEL)?.queue.get('freeze-mid-stream');
    expect(record).toMatchObject({ state: 'finished', attempts: 2 });
    await bothReady(); // the thawed worker re-registers
  });
});

describe('Redis restarts', () => {
  it('a crash of Redis mid-stream (restarted from its AOF): the request completes with every token', async () => {
    const reference = await drain(corral.generate(params(15), { requestId: 'reference-redis' }));
    let restarted = false;
    const run = await drain(
      corral.generate(params(15), { requestId: 'redis-mid-stream' }),
      async (received) => {
        if (restarted || received < 10) return;
        restarted = true;
        await redis.server.restart({ kill: true });
      },
    );
    expect(restarted).toBe(true);
    expect(run.indices).toEqual(contiguous(TOKENS));
    expect(run.text).toBe(reference.text);
  });

  it('a lease that ran out under its running request is taken again by its own dispatcher: the run goes on', async () => {
    // A take sent while Redis was away runs when it returns, with the lease counted from when it was sent: the
    // request starts with a lease about to run out, and the next take here hands it back to this dispatcher.
    const queue = controller.lanes.lanes.get(MODEL)?.queue;
    if (!queue) throw new Error(`no queue for ${MODEL}`);
    const long = { ...params(16), maxTokens: 150 };
    const reference = await drain(corral.generate(long, { requestId: 'reference-lapse' }));
    const client = new Redis(redis.url);
    let lapsed = false;
    try {
      const run = await drain(corral.generate(long, { requestId: 'lease-lapsed' }), async (received) => {
        if (lapsed || received < 10) return;
        lapsed = true;
        await client.zadd(`${queue.base}:leases`, 1, 'lease-lapsed');
        // What a heartbeat does: a take now, before the run's next lease renewal (every leaseMs / 3) renews the
        // lapsed lease and the take finds nothing to hand back (the test failed so about one run in three).
        controller.lanes.onRegistryChange();
      });
      expect(lapsed).toBe(true);
      expect(run.indices).toEqual(contiguous(150));
      expect(run.text).toBe(reference.text);
      // taken twice (the second time by the dispatcher running it), run once
      expect(await queue.get('lease-lapsed')).toMatchObject({ state: 'finished', attempts: 2 });
    } finally {
      client.disconnect();
    }
  });
});

describe('Resume', () => {
  it('a client that dropped its stream resumes after the tokens it received', async () => {
    const reference = await drain(corral.generate(params(13), { requestId: 'reference-resume' }));
    const drop = new AbortController();
    let kept = 0;
    const first = await drain(
      corral.generate(params(13), { requestId: 'dropped', signal: drop.signal }),
      (received) => {
        kept = received;
        if (received >= 15) drop.abort();
      },
    ).catch(() => undefined);
    expect(first).toBeUndefined(); // the aborted stream failed CANCELLED
    const rest = await drain(corral.resume({ model: MODEL, requestId: 'dropped', afterTokenIndex: kept }));
    expect(rest.indices).toEqual(contiguous(TOKENS).slice(kept));
    expect(reference.text.endsWith(rest.text)).toBe(true);
    expect(rest.finished).toMatchObject({ usage: { completionTokens: TOKENS } });
  });

  it('replays a finished request from the start, and refuses an unknown id with NOT_FOUND', async () => {
    const reference = await drain(corral.generate(params(14), { requestId: 'replay-me' }));
    const replay = await drain(corral.resume({ model: MODEL, requestId: 'replay-me', afterTokenIndex: 0 }));
    expect(replay.text).toBe(reference.text);
    const error = (await drain(
      corral.resume({ model: MODEL, requestId: 'never-sent', afterTokenIndex: 0 }),
    ).catch((e: unknown) => e)) as CorralClientError;
    expect(error.codeName).toBe('NOT_FOUND');
    expect(error.details).toBe(
      `request never-sent of model ${MODEL} is unknown (never accepted, or ended long ago)`,
    );
  });
});
