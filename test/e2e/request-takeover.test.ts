/**
 * A controller that dies mid-request: two controller replicas in the local cluster (real processes: Redis, 2
 * controllers, 2 workers, 2 simulated 8B engines). A long request is running; the replica that owns it in the
 * queue (its lease) is SIGKILLed. The other replica reclaims the request when the lease runs out
 * (queue.leaseMs 2000) and continues it from its stream log on a group; the client, if it was attached to the
 * dead replica, resumes on the survivor after the tokens it had. Either way it gets every token exactly once,
 * and the text of an undisturbed run of the same seed.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorralClient, type GenerationEvent } from '../../client/corral-client.ts';
import { CorralClientError } from '../../client/errors.ts';
import { systemClock } from '../../common/clock.ts';
import { RequestQueue } from '../../controller/queue/request-queue.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';
import { until } from '../helpers/until.ts';

const MODEL = 'llama-3.1-8b-instruct';
const TOKENS = 120;
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
queue:
  leaseMs: 2000
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 2
    gpusPerReplica: 1
    maxModelLen: 4096
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '30']
`;

let redis: Redis;
let queue: RequestQueue;

const e2e = useLocalCluster('takeover', {
  config: CONFIG,
  controllers: 2,
  workers: h100Nodes(2),
});

beforeAll(async () => {
  redis = new Redis(e2e.cluster.redis.url);
  queue = new RequestQueue({ redis, clock: systemClock, deployment: MODEL });
});

afterAll(async () => {
  await redis?.quit();
});

const params = {
  model: MODEL,
  prompt: 'Tell me about the Rocky Mountains.',
  maxTokens: TOKENS,
  seed: 5,
  ignoreEos: true,
};

describe('a controller dies mid-request', () => {
  it('another replica continues the request from its log: every token once, the same text', async () => {
    const clients = e2e.cluster.controllers.map((c) => new CorralClient({ address: c.grpc }));
    try {
      const client = (i: number) => {
        const c = clients[i];
        if (!c) throw new Error(`no controller ${i}`);
        return c;
      };
      const reference = await client(0).complete(params, { requestId: 'takeover-reference' });
      let text = '';
      const indices: number[] = [];
      let killed = -1;
      const take = async (events: AsyncIterable<GenerationEvent>) => {
        for await (const e of events) {
          if (e.type !== 'delta') continue;
          text += e.text;
          for (let i = 0; i < e.tokenCount; i++) indices.push(e.index + i);
          if (killed < 0 && indices.length >= 20) killed = await killOwner();
        }
      };
      try {
        await take(client(0).generate(params, { requestId: 'taken-over' }));
      } catch (e) {
        // the client was attached to the replica that died: resume on the survivor after what it received
        expect(e).toBeInstanceOf(CorralClientError);
        expect(killed).toBe(0);
        await take(
          client(1).resume({ model: MODEL, requestId: 'taken-over', afterTokenIndex: indices.length }),
        );
      }
      expect(killed).toBeGreaterThanOrEqual(0);
      expect(indices).toEqual(Array.from({ length: TOKENS }, (_, i) => i));
      expect(text).toBe(reference.text);
      // The dispatcher settles the request after its last event is in the log, so maybe after the client read it.
      const end = await until('the request settled', async () => {
        const r = await queue.get('taken-over');
        return r?.state === 'dispatched' ? undefined : r;
      });
      expect(end).toMatchObject({ state: 'finished', attempts: 2 });
      expect(end?.owner).not.toContain(`-${e2e.cluster.replica(killed).process.pid}-`);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

/** SIGKILLs the replica whose dispatcher holds the request's lease; returns its index. */
async function killOwner(): Promise<number> {
  const owner = (await queue.get('taken-over'))?.owner ?? '';
  const i = e2e.cluster.controllers.findIndex((c) => owner.includes(`-${c.process.pid}-`));
  if (i < 0) throw new Error(`no replica owns the request (owner ${owner})`);
  e2e.cluster.replica(i).process.kill('SIGKILL');
  return i;
}
