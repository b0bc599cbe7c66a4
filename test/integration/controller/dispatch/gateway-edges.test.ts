/**
 * The gateway's edges of the durable path, each with a controller of its own on a real Redis and a fake
 * worker: shedding past the queue bound (RESOURCE_EXHAUSTED with retry-after-ms), an admitted request that
 * waited past it anyway (served, and counted), a client that drops its
 * stream on one controller and resumes on another, and a retry of a request already paid for.
 */
import { type ClientReadableStream, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { inferenceClient, unary } from '../../../../cli/clients.ts';
import { ResourceExhaustedError } from '../../../../common/errors.ts';
import { createLogger, silentLogger } from '../../../../common/log.ts';
import type { Admission } from '../../../../controller/admission/admission.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { startController } from '../../../../controller/controller.ts';
import type { GenerateEvent } from '../../../../proto/gen/corral/v1/inference.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { FakeWorker, generateRequest, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';

const redis = useRedis();

const request = (id: string) => generateRequest({ model: MODEL, requestId: id });

describe('durable path: shedding', () => {
  it('past the queue bound a new request gets RESOURCE_EXHAUSTED with a retry-after-ms hint', async () => {
    const config = compileControllerConfig({
      listen: '127.0.0.1:0',
      redis: redis.url,
      // The depth bound alone: one sequence at the default 30 s service time would shed on the wait first.
      queue: { maxDepth: 2, maxWaitMs: 3_600_000 },
      deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1, maxNumSeqs: 1 }],
    });
    const shedding = await startController(config, { log: silentLogger, redisPrefix: testPrefix('shed') });
    const c = inferenceClient(shedding.address);
    const w = await FakeWorker.start(shedding.address, 'shed-n1');
    const calls: ClientReadableStream<GenerateEvent>[] = [];
    try {
      await w.registerReady(shedding.registry);
      w.script = { t: 'hang' };
      const open = (id: string) => {
        const call = c.generate(request(id), new Metadata(), { deadline: Date.now() + 30_000 });
        calls.push(call);
        return call;
      };
      const running = open('shed-running');
      running.on('error', () => {});
      await new Promise((resolve) => running.once('data', resolve));
      // The queue's load is read at most every 250 ms for shedding: submit until the bound is seen.
      const refused = await until('a refusal', async () => {
        const call = open(`shed-${calls.length}`);
        return new Promise<ServiceError | undefined>((resolve) => {
          call.on('error', (e: ServiceError) =>
            resolve(e.code === status.RESOURCE_EXHAUSTED ? e : undefined),
          );
          call.once('data', () => resolve(undefined)); // never for a queued request: the engine holds one
          setTimeout(() => resolve(undefined), 300);
        });
      });
      expect(refused.details).toMatch(
        new RegExp(`^deployment ${MODEL} is overloaded \\(queue full\\); retry in \\d+ ms$`),
      );
      expect(Number(refused.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
      const load = await shedding.lanes.lanes.get(MODEL)?.queue.load();
      expect(load?.waiting.standard).toBeGreaterThanOrEqual(2);
    } finally {
      for (const call of calls) call.cancel();
      c.close();
      await w.stop();
      await shedding.stop(1000);
    }
  });
});

describe('durable path: admitted past the bound', () => {
  it('a request that waited longer than queue.maxWaitMs is still served, and the dispatcher counts it', async () => {
    const config = compileControllerConfig({
      listen: '127.0.0.1:0',
      redis: redis.url,
      queue: { maxWaitMs: 100, detachGraceMs: 0 }, // the holder's cancel ends its request at once
      deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1, maxNumSeqs: 1 }],
    });
    const ctl = await startController(config, { log: silentLogger, redisPrefix: testPrefix('past-bound') });
    const c = inferenceClient(ctl.address);
    const w = await FakeWorker.start(ctl.address, 'past-n1');
    try {
      await w.registerReady(ctl.registry);
      w.script = { t: 'hang' };
      const holder = c.generate(request('past-holder'), new Metadata(), { deadline: Date.now() + 30_000 });
      holder.on('error', () => {});
      await new Promise((resolve) => holder.once('data', resolve));
      // Nobody waits ahead, so it is admitted (expected wait 0), then waits behind the hanging request.
      w.script = { t: 'stream', deltas: ['ok'] };
      const late = collect(
        c.generate(request('past-late'), new Metadata(), { deadline: Date.now() + 30_000 }),
      );
      await until('queued', async () => {
        const load = await ctl.lanes.lanes.get(MODEL)?.queue.load();
        return load?.waiting.standard === 1 ? true : undefined;
      });
      await new Promise((r) => setTimeout(r, 300));
      holder.cancel();
      expect((await late).text).toBe('ok');
      expect(ctl.lanes.dispatchers.map((d) => d.dispatchedPastBound())).toEqual([1]);
    } finally {
      c.close();
      await w.stop();
      await ctl.stop(1000);
    }
  });
});

describe('durable path: detach and resume across controllers', () => {
  it('a client that drops its stream on one controller and resumes on another keeps its request', async () => {
    const lines: { msg?: string; requestId?: string }[] = [];
    const capture = createLogger('a', { level: 'info', sink: (line) => lines.push(JSON.parse(line)) });
    const prefix = testPrefix('roaming');
    const config = compileControllerConfig({
      listen: '127.0.0.1:0',
      redis: redis.url,
      queue: { detachGraceMs: 100 },
      deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1 }],
    });
    const a = await startController(config, { log: capture, redisPrefix: prefix });
    const b = await startController(config, { log: silentLogger, redisPrefix: prefix });
    const ca = inferenceClient(a.address);
    const cb = inferenceClient(b.address);
    const w = await FakeWorker.start(a.address, 'roam-n1');
    try {
      await w.registerReady(a.registry);
      w.script = { t: 'hang' };
      const first = ca.generate(request('roaming'), new Metadata(), { deadline: Date.now() + 30_000 });
      first.on('error', () => {});
      await new Promise((resolve) => first.once('data', resolve));
      first.cancel(); // the client's connection to controller a drops
      const resumed = cb.resume({ requestId: 'roaming', model: MODEL, afterTokenIndex: 1 }, new Metadata());
      const ended = new Promise<ServiceError>((resolve) => resumed.on('error', resolve));
      resumed.on('data', () => {});
      await until('controller a to keep the request', () =>
        lines.some(
          (l) => l.requestId === 'roaming' && l.msg === 'client gone; request kept: a client attached again',
        )
          ? true
          : undefined,
      );
      expect((await unary(cb.cancel.bind(cb), { requestId: 'roaming' })).found).toBe(true);
      const e = await ended;
      expect({ code: e.code, details: e.details }).toEqual({
        code: status.CANCELLED,
        details: 'request roaming cancelled; engine request aborted',
      });
    } finally {
      ca.close();
      cb.close();
      await w.stop();
      await a.stop(1000);
      await b.stop(1000);
    }
  });
});

describe('durable path: budgets and retries', () => {
  it('a retry of a request already paid for attaches although the budget is spent; a new one is refused', async () => {
    let charged = 0;
    const onePerTenant: Admission = {
      identify: (_key, requested) => ({ tenant: 'payer', weight: 1, cls: requested ?? 'standard' }),
      charge: async () => {
        charged += 1;
        if (charged > 1) throw new ResourceExhaustedError('over budget', { retryAfterMs: 1000 });
      },
    };
    const config = compileControllerConfig({
      listen: '127.0.0.1:0',
      redis: redis.url,
      deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1 }],
    });
    const c = await startController(config, {
      log: silentLogger,
      admission: onePerTenant,
      redisPrefix: testPrefix('budget'),
    });
    const cl = inferenceClient(c.address);
    const w = await FakeWorker.start(c.address, 'budget-n1');
    try {
      await w.registerReady(c.registry);
      const call = (id: string) =>
        collect(cl.generate(request(id), new Metadata(), { deadline: Date.now() + 30_000 }));
      const paid = await call('paid');
      const retried = await call('paid');
      expect(retried.events).toEqual(paid.events);
      const refused = await call('unpaid').catch((e: ServiceError) => e);
      expect((refused as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
      expect((refused as ServiceError).details).toBe('over budget');
      expect(w.calls.map((x) => x.request.request?.requestId)).toEqual(['paid']);
    } finally {
      cl.close();
      await w.stop();
      await c.stop(1000);
    }
  });
});
