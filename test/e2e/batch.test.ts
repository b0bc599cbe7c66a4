/**
 * Offline batches against the local cluster (controller, worker, engine simulator as processes): the official
 * `openai` package's files and batches API, unchanged, and the `corral batch` CLI, each from upload to results.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../cli/local-api-key.ts';
import { REPO_ROOT } from '../../cli/local-cluster.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';
import { until } from '../helpers/until.ts';

const run = promisify(execFile);
const MODEL = 'llama-3.1-8b-instruct';
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
batch: {pollMs: 100, maxOutstanding: 4}
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 1
    gpusPerReplica: 1
    maxModelLen: 4096
    maxNumSeqs: 8
    defaultMaxTokens: 16
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '5']
`;

let http: string;
let openai: OpenAI;
const API_KEY = newApiKey();

const line = (customId: string, content: string, over: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: MODEL, max_tokens: 6, messages: [{ role: 'user', content }], ...over },
  });

const e2e = useLocalCluster('batch', {
  config: CONFIG,
  workers: h100Nodes(1),
  auth: { apiKey: API_KEY },
});

beforeAll(async () => {
  const listening = await e2e.cluster.controller.waitListening(1000);
  if (!listening.http) throw new Error('the controller logged no `http` address');
  http = listening.http;
  openai = new OpenAI({ baseURL: `http://${http}/v1`, apiKey: API_KEY, maxRetries: 0 });
});

describe('offline batch on the local cluster', () => {
  it('openai SDK: upload, create, follow, read the output; a bad line has its error', async () => {
    const lines = [...Array.from({ length: 6 }, (_, i) => line(`q-${i}`, `Question ${i}?`)), '{oops'];
    const file = await openai.files.create({
      file: await toFile(Buffer.from(lines.join('\n')), 'questions.jsonl'),
      purpose: 'batch',
    });
    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { job: 'e2e' },
    });
    const done = await until('the batch to complete', async () => {
      const b = await openai.batches.retrieve(batch.id);
      return b.status === 'completed' ? b : undefined;
    });
    expect(done.request_counts).toEqual({ total: 7, completed: 6, failed: 1 });
    expect(done.metadata).toEqual({ job: 'e2e' });
    const output = (await (await openai.files.content(done.output_file_id ?? '')).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(output.map((o) => o.custom_id)).toEqual([...[0, 1, 2, 3, 4, 5].map((i) => `q-${i}`), null]);
    for (const o of output.slice(0, 6)) {
      expect(o.response.status_code).toBe(200);
      expect(o.response.body.choices[0].message.content.length).toBeGreaterThan(0);
      expect(o.response.body.usage.completion_tokens).toBe(6);
    }
    expect(output[6].error).toMatchObject({ code: 'invalid_json', line: 7 });
  });

  it('corral batch submit / status / results', async () => {
    const input = join(e2e.dir, 'cli.jsonl');
    // No model in the bodies: --model fills it in.
    writeFileSync(
      input,
      `${[1, 2, 3].map((i) => JSON.stringify({ custom_id: `c-${i}`, method: 'POST', url: '/v1/chat/completions', body: { max_tokens: 4, messages: [{ role: 'user', content: `Hi ${i}` }] } })).join('\n')}\n`,
    );
    const corral = (...args: string[]) =>
      run(join(REPO_ROOT, 'bin', 'corral'), ['batch', ...args, '--http', http, '--api-key', API_KEY], {
        cwd: REPO_ROOT,
      });
    const submitted = await corral('submit', input, '--model', MODEL, '--json');
    const id = (JSON.parse(submitted.stdout) as { id: string }).id;
    expect(id).toMatch(/^batch_/);
    await until('the batch to complete', async () => {
      const b = await openai.batches.retrieve(id);
      return b.status === 'completed' ? b : undefined;
    });
    const status = await corral('status', id);
    expect(status.stdout).toContain(`${id}  completed  total 3  completed 3  failed 0`);
    const out = join(e2e.dir, 'cli-out.jsonl');
    await corral('results', id, '-o', out);
    const results = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(results.map((r) => [r.custom_id, r.response.status_code])).toEqual([
      ['c-1', 200],
      ['c-2', 200],
      ['c-3', 200],
    ]);
    await expect(corral('status', 'batch_nope')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('404 no batch batch_nope'),
    });
  });
});
