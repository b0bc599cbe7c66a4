/**
 * The completion window, with the batch driver on a real Redis and a manual clock: a batch whose window ended
 * before its lines were fed gives each unfed line a batch_expired error (bad lines keep their own) and ends
 * `expired`. No line reaches a queue, so the batch needs no deployment lane.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { openAdmission } from '../../../../controller/admission/admission.ts';
import { BATCH_DEFAULTS } from '../../../../controller/batch/batch-config.ts';
import { driveBatch } from '../../../../controller/batch/batch-driver.ts';
import type { OutputLine } from '../../../../controller/batch/batch-output.ts';
import { BatchStore } from '../../../../controller/batch/batch-store.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { WorkerRegistry } from '../../../../controller/registry/worker-registry.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { chatLine } from './batch-harness.ts';

const redis = useRedis();

describe('batch completion window', () => {
  it('lines not fed when the window ends get batch_expired, and the batch ends expired', async () => {
    const clock = new ManualClock(1_000_000);
    const store = new BatchStore(redis.client, testPrefix('expiry'), 60_000);
    const lines = [chatLine('e-1', 'Hi'), 'not json', chatLine('e-2', 'Hello')];
    await store.putFile(
      { id: 'file-e', tenant: 't', filename: 'e.jsonl', purpose: 'batch', bytes: 1, lines: 3, createdAt: 0 },
      lines,
    );
    await store.createBatch(
      {
        id: 'batch_e',
        tenant: 't',
        weight: 1,
        url: '/v1/chat/completions',
        inputFileId: 'file-e',
        createdAt: clock.now(),
        expiresAt: clock.now() - 1,
        metadata: null,
      },
      clock.now(),
    );
    const { deployments } = compileControllerConfig({
      deployments: [{ name: 'llama-3.1-8b-instruct', model: 'meta-llama/Llama-3.1-8B-Instruct' }],
    });
    const outcome = await driveBatch(
      {
        store,
        lanes: new Map(),
        deployments,
        gateway: {
          registry: new WorkerRegistry({ workerTimeoutMs: 1000, clock, log: silentLogger }),
          admission: openAdmission(),
          tokens: { count: async (t) => t.length, close: async () => {} },
          clock,
          random: () => 0.5,
        },
        config: { ...BATCH_DEFAULTS, pollMs: 1 },
        clock,
        log: silentLogger,
      },
      'batch_e',
      new AbortController().signal,
    );
    expect(outcome).toBe('ended');
    const b = await store.getBatch('batch_e');
    expect(b?.status).toBe('expired');
    expect(b?.counts).toEqual({ total: 3, completed: 0, failed: 3, outstanding: 0 });
    const out = (await store.results('batch_e', 1, 3)).map((v) => JSON.parse(v ?? 'null') as OutputLine);
    expect(out.map((o) => [o.custom_id, o.error?.code])).toEqual([
      ['e-1', 'batch_expired'],
      [null, 'invalid_json'],
      ['e-2', 'batch_expired'],
    ]);
  });
});
