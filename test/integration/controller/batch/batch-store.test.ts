/**
 * The batch store on a real Redis: a line's result is written and counted once however many drivers record it
 * (a stalled driver and its successor), the status moves only along the lifecycle, and a terminal batch drops
 * its set of fed lines.
 */
import { describe, expect, it } from 'vitest';
import { BatchStore } from '../../../../controller/batch/batch-store.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

async function newBatch(store: BatchStore, id: string): Promise<void> {
  await store.createBatch(
    {
      id,
      tenant: 't',
      weight: 1,
      url: '/v1/chat/completions',
      inputFileId: 'file-1',
      createdAt: 1,
      expiresAt: 2,
      metadata: { a: 'b' },
    },
    1,
  );
}

describe('BatchStore', () => {
  it('records a line once: a second driver recording it again changes nothing', async () => {
    const store = new BatchStore(redis.client, testPrefix('store'), 60_000);
    await newBatch(store, 'b1');
    await store.markFed('b1', 3);
    expect((await store.getBatch('b1'))?.counts.outstanding).toBe(1);
    expect(await store.record('b1', 3, '{"first":true}', true)).toBe(true);
    expect(await store.record('b1', 3, '{"second":true}', false)).toBe(false);
    const b = await store.getBatch('b1');
    expect(b?.counts).toEqual({ total: 0, completed: 1, failed: 0, outstanding: 0 });
    expect(b?.metadata).toEqual({ a: 'b' });
    expect(await store.results('b1', 2, 3)).toEqual([undefined, '{"first":true}', undefined]);
  });

  it('moves the status only along the lifecycle, and says where it was when it cannot', async () => {
    const store = new BatchStore(redis.client, testPrefix('store'), 60_000);
    await newBatch(store, 'b2');
    expect(await store.transition('b2', 'completed', 5)).toBe('validating');
    expect(await store.transition('b2', 'in_progress', 6)).toBe('ok');
    expect(await store.transition('b2', 'cancelling', 7)).toBe('ok');
    expect(await store.transition('b2', 'completed', 8)).toBe('cancelling');
    await store.markFed('b2', 1);
    expect(await store.transition('b2', 'cancelled', 9)).toBe('ok');
    const b = await store.getBatch('b2');
    expect(b?.status).toBe('cancelled');
    expect(b?.at).toEqual({ validating: 1, in_progress: 6, cancelling: 7, cancelled: 9 });
    expect(b?.counts.outstanding).toBe(0);
    expect(await store.transition('missing', 'cancelling', 1)).toBe('missing');
  });
});
