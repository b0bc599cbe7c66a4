/**
 * A batch outlives the controller that drove it: controller a takes the batch and feeds its first lines, then
 * stops; controller b (same Redis, same prefix) gets the batch from BullMQ and finishes it from the state in
 * Redis: every line has exactly one result and no line ran twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import { startRedis, type TestRedis, testPrefix } from '../../../helpers/redis.ts';
import { FakeWorker, until } from '../fake-worker.ts';
import { batchStatus, batchWhere, chatLine, outputLines, submitBatch } from './batch-harness.ts';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

async function controllerWithWorker(
  prefix: string,
  workerId: string,
): Promise<{ c: RunningController; w: FakeWorker; stop(): Promise<void> }> {
  const config = compileControllerConfig({
    listen: '127.0.0.1:0',
    redis: redis.url,
    heartbeatIntervalMs: 200,
    workerTimeoutMs: 600,
    queue: { detachGraceMs: 100, maxWaitMs: 3_600_000, leaseMs: 1000 },
    batch: { pollMs: 50, maxOutstanding: 2, lockMs: 2000 },
    deployments: [
      {
        name: 'llama-3.1-8b-instruct',
        model: 'meta-llama/Llama-3.1-8B-Instruct',
        replicas: 1,
        maxNumSeqs: 1,
      },
    ],
  });
  const c = await startController(config, { log: silentLogger, redisPrefix: prefix });
  const w = await FakeWorker.start(c.address, workerId);
  await w.register();
  await until('engine ready', () => (c.registry.get(workerId)?.engines.length === 1 ? true : undefined));
  let stopped = false;
  return {
    c,
    w,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await w.stop();
      await c.stop(200);
    },
  };
}

describe('offline batch across controllers', () => {
  it('a batch whose controller stops is finished by another, each line run once', async () => {
    const prefix = testPrefix('batch-failover');
    const a = await controllerWithWorker(prefix, 'a-n1');
    let b: Awaited<ReturnType<typeof controllerWithWorker>> | undefined;
    try {
      a.w.script = { t: 'stream', deltas: ['Paris'] };
      const lines = Array.from({ length: 8 }, (_, i) => chatLine(`l-${i}`, `Question ${i}`));
      const id = await submitBatch(a.c.batches, lines);
      await batchWhere(a.c.batches, id, 'some lines done on a', (x) => x.counts.completed >= 2);
      // a's engine stops answering; a stops with the batch half done, its fed lines still in the queue.
      a.w.script = { t: 'hang' };
      await batchWhere(a.c.batches, id, 'a line running on a', (x) => x.counts.outstanding > 0);
      const left = await a.c.batches.getBatch({ tenant: 'default', weight: 1, cls: 'batch' }, id);
      expect(left.status).toBe('in_progress');
      expect(left.counts.completed).toBeLessThan(8);
      await a.stop();

      b = await controllerWithWorker(prefix, 'b-n1');
      b.w.script = { t: 'stream', deltas: ['Rome'] };
      const done = await batchStatus(b.c.batches, id, 'completed');
      expect(done.counts).toEqual({ total: 8, completed: 8, failed: 0, outstanding: 0 });
      const out = await outputLines(b.c.batches, id);
      expect(out.map((o) => o.custom_id)).toEqual(lines.map((_, i) => `l-${i}`));
      expect(out.every((o) => o.response?.status_code === 200)).toBe(true);
      // Each line ran to its end once: on a (Paris) or, for the rest, on b (Rome); none on both.
      const ranOnA = new Set(a.w.calls.filter((c) => !c.cancelled).map((c) => c.request.request?.requestId));
      const ranOnB = b.w.calls.map((c) => c.request.request?.requestId);
      expect(ranOnB.filter((r) => ranOnA.has(r) && r !== undefined)).toEqual([]);
      expect(new Set(ranOnB).size).toBe(ranOnB.length);
      expect(ranOnB.length).toBeGreaterThan(0);
    } finally {
      await b?.stop();
      await a.stop();
    }
  });
});
