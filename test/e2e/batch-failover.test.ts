/**
 * Offline batches survive a controller crash: two controller replicas (processes) each drive one batch
 * (batch.concurrency 1); one replica is SIGKILLed mid-batch, so nothing hands its batch back. BullMQ's
 * stalled-job check on the survivor finds the batch when its lock runs out (batch.lockMs, at its default of 5 s)
 * and the survivor finishes both batches from their state in Redis: every line has its 200 result.
 */
import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { newApiKey } from '../../cli/local-api-key.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';
import { until } from '../helpers/until.ts';

const MODEL = 'llama-3.1-8b-instruct';
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
queue: {leaseMs: 2000}
batch: {pollMs: 100, maxOutstanding: 2, concurrency: 1}
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 1
    gpusPerReplica: 1
    maxModelLen: 4096
    maxNumSeqs: 4
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '20']
`;
const LINES = 12;

const API_KEY = newApiKey();

const sdk = (i: number) =>
  new OpenAI({ baseURL: `http://${e2e.cluster.replica(i).http}/v1`, apiKey: API_KEY, maxRetries: 0 });

async function submit(openai: OpenAI, name: string): Promise<string> {
  const jsonl = Array.from({ length: LINES }, (_, i) =>
    JSON.stringify({
      custom_id: `${name}-${i}`,
      method: 'POST',
      url: '/v1/chat/completions',
      body: {
        model: MODEL,
        max_tokens: 12,
        ignore_eos: true,
        messages: [{ role: 'user', content: `Q ${i}` }],
      },
    }),
  ).join('\n');
  const file = await openai.files.create({
    file: await toFile(Buffer.from(jsonl), `${name}.jsonl`),
    purpose: 'batch',
  });
  const b = await openai.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/chat/completions',
    completion_window: '24h',
  });
  return b.id;
}

const e2e = useLocalCluster('batch-failover', {
  config: CONFIG,
  controllers: 2,
  workers: h100Nodes(1),
  auth: { apiKey: API_KEY },
});

describe('offline batch across a controller crash', () => {
  it('SIGKILL a replica driving a batch: the survivor finishes it, every line answered', async () => {
    const first = sdk(0);
    const ids = [await submit(first, 'a'), await submit(first, 'b')];
    // Both batches started: with concurrency 1 each replica drives one of them.
    await until('both batches running', async () => {
      const bs = await Promise.all(ids.map((id) => first.batches.retrieve(id)));
      return bs.every((b) => b.request_counts && b.request_counts.completed > 0) ? true : undefined;
    });
    e2e.cluster.replica(0).process.kill('SIGKILL');

    const survivor = sdk(1);
    for (const id of ids) {
      const done = await until(
        `batch ${id} completed on the survivor`,
        async () => {
          const b = await survivor.batches.retrieve(id);
          return b.status === 'completed' ? b : undefined;
        },
        90_000,
      );
      expect(done.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
      const out = (await (await survivor.files.content(done.output_file_id ?? '')).text()).trim().split('\n');
      expect(out.map((l) => JSON.parse(l).response.status_code)).toEqual(Array(LINES).fill(200));
    }
  });
});
