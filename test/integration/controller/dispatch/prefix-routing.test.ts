/**
 * Prefix- and load-aware dispatch on real Redis and real gRPC: two active controller replicas sharing one queue
 * and four single-node groups (fake workers, one per node and replica: every worker registers with every
 * replica). Requests that share a long prefix, sent alternately to both replicas, all land on one group (each
 * replica's index learns the other's decisions from the shared route stream, and a replica started later
 * replays them); unrelated requests that stay
 * running spread evenly over the groups (either replica may take each; the other's load is in the groups'
 * heartbeats, which the fake workers fill with their open calls).
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceClient } from '../../../../cli/clients.ts';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import {
  type GenerateEvent,
  type GenerateRequest,
  type InferenceClient,
  PriorityClass,
} from '../../../../proto/gen/corral/v1/inference.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { FakeWorker, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';
const NODES = ['n1', 'n2', 'n3', 'n4'];

const redis = useRedis();
const controllers: RunningController[] = [];
const clients: InferenceClient[] = [];
/** fakes[c][i]: node i as controller c sees it. */
const fakes: FakeWorker[][] = [];

let config: ReturnType<typeof compileControllerConfig>;
const PREFIX = testPrefix('prefix-routing');

/** Starts a controller replica and a fake worker per node registered with it. */
async function startReplica(replicaId: string): Promise<FakeWorker[]> {
  const c = await startController(config, { log: silentLogger, redisPrefix: PREFIX, replicaId });
  controllers.push(c);
  clients.push(inferenceClient(c.address));
  const side: FakeWorker[] = [];
  for (const id of NODES) {
    const w = await FakeWorker.start(c.address, id);
    await w.register();
    side.push(w);
  }
  fakes.push(side);
  return side;
}

/** Reports the engines `from` runs to another replica's fakes of the same nodes. */
function mirror(from: FakeWorker[], to: FakeWorker[]): void {
  to.forEach((w, i) => {
    for (const e of (from[i] as FakeWorker).engines.values()) w.engines.set(e.engineId, e);
    w.heartbeat();
  });
}

async function allReady(): Promise<void> {
  await until('all groups ready on every replica', () =>
    controllers.every((c) => c.registry.all().filter((w) => w.engines.length === 1).length === NODES.length)
      ? true
      : undefined,
  );
}

beforeAll(async () => {
  config = compileControllerConfig({
    listen: '127.0.0.1:0',
    redis: redis.url,
    heartbeatIntervalMs: 200,
    workerTimeoutMs: 2000,
    queue: { detachGraceMs: 100 },
    deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: NODES.length }],
  });
  await startReplica('c1');
  await startReplica('c2');
  // Only the reconciler's leader launches; the same engines are then reported to the other replica too.
  const launched = await until('every engine launched', () =>
    fakes.find((s) => s.every((w) => w.engines.size === 1)),
  );
  for (const side of fakes) if (side !== launched) mirror(launched, side);
  await allReady();
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const w of fakes.flat()) await w.stop();
  for (const c of controllers) await c.stop(1000);
});

/** A prompt of token ids: `prefixTokens` ids named by `prefix`, then 16 ids unique to `id`. */
function request(id: string, prefix: number, prefixTokens = 2048): GenerateRequest {
  const ids = Array.from({ length: prefixTokens }, (_, i) => (prefix * 7919 + i * 31) % 120_000);
  for (let i = 0; i < 16; i++) ids.push((id.length * 977 + i * 13 + Number(id.replace(/\D/g, ''))) % 120_000);
  return {
    model: MODEL,
    requestId: id,
    input: { $case: 'promptTokenIds', value: { ids } },
    maxTokens: 8,
    sampling: undefined,
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  };
}

/** The engine every call for these request ids went to, on either replica. */
function enginesOf(ids: readonly string[]): string[] {
  const byId = new Map<string, string>();
  for (const w of fakes.flat())
    for (const call of w.calls) {
      const id = call.request.request?.requestId ?? '';
      if (ids.includes(id)) byId.set(id, call.request.engineId);
    }
  return ids.map((id) => byId.get(id) ?? 'none');
}

/** Sequences the groups' last heartbeats report running, as replica c sees them. */
function runningSeenBy(c: RunningController): number {
  let n = 0;
  for (const w of c.registry.all()) for (const e of w.engines) n += e.running;
  return n;
}

describe('prefix-aware dispatch across two controller replicas', () => {
  it('sends requests sharing a long prefix to one group, whichever replica takes them', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `shared-${i}`);
    for (const [i, id] of ids.entries()) {
      const got = await collect((clients[i % 2] as InferenceClient).generate(request(id, 1)));
      expect(got.events.at(-1)?.event?.$case).toBe('finished');
    }
    const engines = enginesOf(ids);
    expect(new Set(engines).size).toBe(1);
    expect(engines[0]).not.toBe('none');
    const hits = controllers.reduce((n, c) => n + (c.lanes.pickReasons(MODEL).get('prefix hit') ?? 0), 0);
    expect(hits).toBe(ids.length - 1);
  });

  it('spreads unrelated requests that keep running evenly over the groups', async () => {
    for (const w of fakes.flat()) {
      w.script = { t: 'hang' };
      // A node's engine runs what either replica sent it.
      w.runningOf = (engineId) =>
        fakes
          .flat()
          .reduce((n, f) => n + f.calls.filter((c) => c.open && c.request.engineId === engineId).length, 0);
    }
    const ids = Array.from({ length: 8 }, (_, i) => `unrelated-${i}`);
    const streams: ClientReadableStream<GenerateEvent>[] = [];
    try {
      for (const [i, id] of ids.entries()) {
        streams.push((clients[0] as InferenceClient).generate(request(id, 100 + i)));
        streams.at(-1)?.on('error', () => {});
        await until(`${id} dispatched`, () => (enginesOf([id])[0] !== 'none' ? true : undefined));
        await until(`both replicas see ${i + 1} running`, () =>
          controllers.every((c) => runningSeenBy(c) === i + 1) ? true : undefined,
        );
      }
      const perGroup = new Map<string, number>();
      for (const e of enginesOf(ids)) perGroup.set(e, (perGroup.get(e) ?? 0) + 1);
      expect([...perGroup.values()]).toEqual([2, 2, 2, 2]);
    } finally {
      for (const s of streams) s.cancel();
      for (const w of fakes.flat()) {
        w.script = { t: 'stream', deltas: ['Hello'] };
        w.runningOf = undefined;
      }
    }
  });

  it('a replica that starts later rebuilds its index from the shared decisions', async () => {
    const ids = ['late-0', 'late-1'];
    await collect((clients[0] as InferenceClient).generate(request(ids[0] as string, 2)));
    const c3 = await startReplica('c3');
    mirror(fakes.find((side) => side !== c3 && side.every((w) => w.engines.size === 1)) ?? [], c3);
    await allReady();
    // Only c3's dispatcher may take the next request: the others stop taking.
    for (const c of controllers.slice(0, 2)) for (const d of c.lanes.dispatchers) await d.stop(1000);
    await collect((clients[2] as InferenceClient).generate(request(ids[1] as string, 2)));
    const engines = enginesOf(ids);
    expect(engines[1]).toBe(engines[0]);
    expect(controllers[2]?.lanes.pickReasons(MODEL).get('prefix hit')).toBe(1);
  });
});
