/**
 * A batch cannot bypass its tenant's admission: every line is charged to the submitter's tenant at class
 * batch, a spent budget pauses the feeding for the retry-after (the lines wait, none fails), and a tenant not
 * granted the batch class is refused at the door (HTTP 403). Real Redis, gRPC, HTTP and a fake worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../common/log.ts';
import type { Admission, Admitted } from '../../../../controller/admission/admission.ts';
import { type HttpServer, startHttpServer } from '../../../../controller/http/http-server.ts';
import { OverBudgetError } from '../../../../controller/tenancy/errors.ts';
import { ClassNotAllowedError } from '../../../../controller/tenancy/tenant-directory.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { useControllerWithWorker } from '../controller-with-worker.ts';
import { batchStatus, chatLine, outputLines, submitBatch } from './batch-harness.ts';

const charges: Admitted[] = [];
let refusals = 0;
/** The key names the tenant; `interactive-only` may not use the batch class; every other charge is refused once. */
const admission: Admission = {
  identify: (apiKey, requested) => {
    const tenant = apiKey ?? 'default';
    if (tenant === 'interactive-only' && requested === 'batch')
      throw new ClassNotAllowedError(tenant, requested);
    return { tenant, weight: 2, cls: requested ?? 'standard' };
  },
  charge: async (who) => {
    if (charges.length % 2 === 1 && refusals < charges.length) {
      refusals += 1;
      throw new OverBudgetError(who.tenant, 'requests', 100);
    }
    charges.push(who);
  },
};

const redis = useRedis();
const fixture = useControllerWithWorker(
  redis,
  {
    batch: { pollMs: 50, maxOutstanding: 4 },
    deployments: [{ name: 'llama-3.1-8b-instruct', model: 'meta-llama/Llama-3.1-8B-Instruct', replicas: 1 }],
  },
  { admission, redisPrefix: testPrefix('batch-adm') },
);
let http: HttpServer;

beforeAll(async () => {
  http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    path: fixture.controller.path,
    admission,
    batches: fixture.controller.batches,
    log: silentLogger,
  });
});

afterAll(async () => {
  await http?.close();
});

describe('offline batch admission', () => {
  it("charges every line to the submitter's tenant at class batch; a spent budget makes lines wait, not fail", async () => {
    const who: Admitted = { tenant: 'acme', weight: 2, cls: 'batch' };
    const lines = Array.from({ length: 6 }, (_, i) => chatLine(`b-${i}`, `Question ${i}`));
    const id = await submitBatch(fixture.controller.batches, lines, who);
    const done = await batchStatus(fixture.controller.batches, id, 'completed', who);
    expect(done.counts).toMatchObject({ total: 6, completed: 6, failed: 0 });
    expect(refusals).toBeGreaterThanOrEqual(2);
    expect(charges).toEqual(Array.from({ length: 6 }, () => who));
    const out = await outputLines(fixture.controller.batches, id, who);
    expect(out.map((o) => o.response?.status_code)).toEqual([200, 200, 200, 200, 200, 200]);
    // Another tenant's batch is as unknown as a missing one.
    await expect(
      fixture.controller.batches.getBatch({ tenant: 'other', weight: 1, cls: 'batch' }, id),
    ).rejects.toThrow(`no batch ${id}`);
  });

  it('refuses a tenant without the batch class with 403 on the batch routes', async () => {
    const res = await fetch(`http://${http.address}/v1/batches/batch_x`, {
      headers: { authorization: 'Bearer interactive-only' },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'tenant interactive-only may not submit batch requests',
    );
  });
});
