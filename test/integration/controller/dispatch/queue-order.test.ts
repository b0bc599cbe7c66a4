/**
 * The durable path's queue semantics end to end, on a real Redis, real gRPC and a fake worker whose one engine
 * has room for one sequence (maxNumSeqs 1), so every other request waits in the queue: dispatch follows the
 * priority classes; a tenant sending 10x the requests of another still gets its weighted share; a request whose
 * deadline passes while queued is never dispatched; a cancel before dispatch removes it; a resubmission after
 * the end replays the logged stream without running again; a lost request ends instead of hanging; a draining
 * group keeps what it runs; an unreadable entry fails at once. gateway-edges.test.ts has the tests that need a
 * controller of their own.
 */
import { type ClientReadableStream, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceClient, unary } from '../../../../cli/clients.ts';
import type { Admission } from '../../../../controller/admission/admission.ts';
import { queueBase, requestKey } from '../../../../controller/queue/keys.ts';
import {
  type GenerateEvent,
  type GenerateRequest,
  type InferenceClient,
  PriorityClass,
} from '../../../../proto/gen/corral/v1/inference.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { useControllerWithWorker } from '../controller-with-worker.ts';
import { generateRequest, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';

/** The API key names the tenant; `light` weighs 3, everyone else 1. */
const keyedAdmission: Admission = {
  identify: (apiKey, requested) => ({
    tenant: apiKey ?? 'default',
    weight: apiKey === 'light' ? 3 : 1,
    cls: requested ?? 'standard',
  }),
  charge: async () => {},
};

const redis = useRedis();
const PREFIX = testPrefix('queue-order');
const fixture = useControllerWithWorker(
  redis,
  {
    // The expected-wait bound would shed the 110-request burst (one sequence: before a drain is measured the
    // queue expects one request per service time, 50.8 s here, so 110 of them ~1.6 h): these tests are about
    // order, hence a bound of a day; shedding has its own
    // tests (gateway-edges.test.ts, request-queue.test.ts).
    queue: { detachGraceMs: 100, maxWaitMs: 86_400_000 },
    deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1, maxNumSeqs: 1 }],
  },
  { admission: keyedAdmission, redisPrefix: PREFIX },
);
let client: InferenceClient;

beforeAll(() => {
  client = inferenceClient(fixture.controller.address);
});

afterAll(() => {
  client?.close();
});

const request = (id: string, over: Partial<GenerateRequest> = {}) =>
  generateRequest({ model: MODEL, requestId: id, ...over });

function generate(
  req: GenerateRequest,
  apiKey?: string,
  deadlineMs = 30_000,
): ClientReadableStream<GenerateEvent> {
  const md = new Metadata();
  if (apiKey) md.set('x-api-key', apiKey);
  return client.generate(req, md, { deadline: Date.now() + deadlineMs });
}

const queue = () => {
  const lane = fixture.controller.lanes.lanes.get(MODEL);
  if (!lane) throw new Error('no lane');
  return lane.queue;
};

async function waiting(n: number): Promise<void> {
  await until(`${n} requests waiting`, async () => {
    const w = (await queue().load()).waiting;
    return w.interactive + w.standard + w.batch === n ? true : undefined;
  });
}

/** Holds the engine's one sequence until release() (a hanging request, then cancelled). */
async function occupy(id: string): Promise<{ release(): Promise<void> }> {
  fixture.worker.script = { t: 'hang' };
  const call = generate(request(id));
  call.on('error', () => {});
  await new Promise((resolve) => call.once('data', resolve));
  fixture.worker.script = { t: 'stream', deltas: ['ok'] };
  return {
    release: async () => {
      await unary(client.cancel.bind(client), { requestId: id });
    },
  };
}

/** Starts a request and leaves it running; its stream is read to the end in the background. */
async function collectLater(id: string): Promise<void> {
  void collect(generate(request(id))).catch(() => {});
}

const dispatched = () => fixture.worker.calls.map((c) => c.request.request?.requestId ?? '');

describe('durable path: queue order', () => {
  it('dispatches by priority class, FIFO inside a class', async () => {
    const blocker = await occupy('prio-blocker');
    const cls = {
      b: PriorityClass.PRIORITY_CLASS_BATCH,
      s: PriorityClass.PRIORITY_CLASS_STANDARD,
      i: PriorityClass.PRIORITY_CLASS_INTERACTIVE,
    };
    const ids = ['b1', 's1', 'i1', 'b2', 's2', 'i2'];
    const runs: Promise<unknown>[] = [];
    for (const id of ids) {
      runs.push(collect(generate(request(`prio-${id}`, { priorityClass: cls[id[0] as 'b' | 's' | 'i'] }))));
      await waiting(runs.length); // submission order is the order written
    }
    fixture.worker.calls.length = 0;
    await blocker.release();
    await Promise.all(runs);
    expect(dispatched()).toEqual(['i1', 'i2', 's1', 's2', 'b1', 'b2'].map((x) => `prio-${x}`));
  });

  it('gives a tenant its weighted share although another sends 10x as many requests', async () => {
    const blocker = await occupy('fair-blocker');
    const runs: Promise<unknown>[] = [];
    // heavy (weight 1) queues 100 first, then light (weight 3) queues 10: light should get 3 of every 4
    // dispatches while it has requests waiting, not wait behind heavy's 100.
    for (let i = 0; i < 100; i++) runs.push(collect(generate(request(`heavy-${i}`), 'heavy')));
    await waiting(100);
    for (let i = 0; i < 10; i++) runs.push(collect(generate(request(`light-${i}`), 'light')));
    await waiting(110);
    fixture.worker.calls.length = 0;
    await blocker.release();
    await Promise.all(runs);
    const order = dispatched();
    expect(order).toHaveLength(110);
    const lastLight = order.findLastIndex((id) => id.startsWith('light-'));
    const share = 10 / (lastLight + 1);
    expect(share).toBeGreaterThanOrEqual(0.75 - 0.1);
    expect(share).toBeLessThanOrEqual(0.75 + 0.1);
  });
});

describe('durable path: deadlines, cancel, resubmission', () => {
  it('a request whose deadline passes while queued is never dispatched; its client gets DEADLINE_EXCEEDED', async () => {
    const blocker = await occupy('deadline-blocker');
    const call = generate(request('expires'), undefined, 400);
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    expect((await ended).code).toBe(status.DEADLINE_EXCEEDED);
    await until('expired in the queue', async () =>
      (await queue().get('expires'))?.state === 'expired' ? true : undefined,
    );
    fixture.worker.calls.length = 0;
    await blocker.release();
    await collect(generate(request('after-expired')));
    expect(dispatched()).toEqual(['after-expired']);
  });

  it('a cancel before dispatch removes the request: CANCELLED, never dispatched', async () => {
    const blocker = await occupy('cancel-blocker');
    const call = generate(request('cancel-queued'));
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    await waiting(1);
    expect((await unary(client.cancel.bind(client), { requestId: 'cancel-queued' })).found).toBe(true);
    const e = await ended;
    expect({ code: e.code, details: e.details }).toEqual({
      code: status.CANCELLED,
      details: 'request cancelled before dispatch',
    });
    fixture.worker.calls.length = 0;
    await blocker.release();
    await collect(generate(request('after-cancel')));
    expect(dispatched()).toEqual(['after-cancel']);
  });

  it('a client waiting on a request the store lost gets UNAVAILABLE instead of waiting forever', async () => {
    const blocker = await occupy('lost-blocker');
    const call = generate(request('lost-one'));
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    await waiting(1);
    // What a Redis crash with appendfsync everysec can do to the last second of writes.
    const r = new Redis(redis.url);
    const base = queueBase(PREFIX, MODEL);
    await r.del(requestKey(base, 'lost-one'));
    await r.zrem(`${base}:ready:standard`, 'lost-one');
    await r.quit();
    const e = await ended;
    expect({ code: e.code, details: e.details }).toEqual({
      code: status.UNAVAILABLE,
      details:
        'request lost-one is no longer in the queue (its store lost recent writes); submit it again with the same request id',
    });
    await blocker.release();
  });

  it('a draining group gets no new request but finishes the one it runs', async () => {
    const blocker = await occupy('drain-blocker');
    fixture.worker.draining = true;
    await until('the worker draining', () =>
      fixture.controller.registry.get('n1')?.draining ? true : undefined,
    );
    fixture.controller.lanes.onRegistryChange(); // what every heartbeat does: it must not take the run away
    await collectLater('queued-while-draining');
    await waiting(1);
    fixture.worker.draining = false;
    await blocker.release();
    // Ended by the cancel on its first attempt: never handed back to be continued elsewhere.
    const end = await until('the blocker to end', async () => {
      const r = await queue().get('drain-blocker');
      return r?.state === 'failed' ? r : undefined;
    });
    expect(end).toMatchObject({ attempts: 1, error: { code: 'cancelled' } });
  });

  it('a queue entry with an unreadable body fails at once with the reason instead of being retried', async () => {
    await queue().submit({ id: 'garbled', tenant: 'default', weight: 1, cls: 'standard', body: '{not json' });
    const record = await until('the entry to fail', async () => {
      const r = await queue().get('garbled');
      return r?.state === 'failed' ? r : undefined;
    });
    expect(record.attempts).toBe(1);
    expect(record.error?.code).toBe('internal');
    expect(record.error?.message).toMatch(/^request garbled has an unreadable body: SyntaxError/);
  });

  it('a resubmission after the end replays the logged stream without running again', async () => {
    fixture.worker.script = { t: 'stream', deltas: ['Hello', ', ', 'world'] };
    fixture.worker.calls.length = 0;
    const first = await collect(generate(request('replayed')));
    const again = await collect(generate(request('replayed')));
    expect(again.events).toEqual(first.events);
    expect(again.text).toBe('Hello, world');
    expect(dispatched()).toEqual(['replayed']);
  });

  it('a worker that keeps its stream open after Finished: the client has its end at once, the call is cancelled after a grace', async () => {
    fixture.worker.script = { t: 'stream', deltas: ['Hello'], keepOpen: true };
    fixture.worker.calls.length = 0;
    try {
      const done = await collect(generate(request('held-open')));
      expect(done.text).toBe('Hello');
      const [call] = fixture.worker.calls;
      await until('the held-open call cancelled', () => (call?.cancelled ? true : undefined));
      expect(await queue().get('held-open')).toMatchObject({ state: 'finished', attempts: 1 });
    } finally {
      fixture.worker.script = { t: 'stream', deltas: ['ok'] };
    }
  });
});
