/**
 * Offline batches on a real Redis, real gRPC and a fake worker whose one engine runs one sequence at a time
 * (maxNumSeqs 1): a file of good and bad lines gives one result per line (the bad ones their error and line
 * number); at most maxOutstanding lines wait in the queue while progress moves; interactive requests sent
 * while a batch waits run before its remaining lines; a cancel removes queued lines and aborts the running
 * one; the HTTP routes serve the official `openai` SDK's files and batches calls.
 */
import { Metadata } from '@grpc/grpc-js';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceClient, unary } from '../../../../cli/clients.ts';
import { silentLogger } from '../../../../common/log.ts';
import { type HttpServer, startHttpServer } from '../../../../controller/http/http-server.ts';
import {
  type GenerateRequest,
  type InferenceClient,
  PriorityClass,
} from '../../../../proto/gen/corral/v1/inference.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { useControllerWithWorker } from '../controller-with-worker.ts';
import { generateRequest, until } from '../fake-worker.ts';
import { batchStatus, batchWhere, chatLine, outputLines, submitBatch } from './batch-harness.ts';

const MODEL = 'llama-3.1-8b-instruct';

const redis = useRedis();
const fixture = useControllerWithWorker(
  redis,
  {
    queue: { detachGraceMs: 100, maxWaitMs: 3_600_000 },
    batch: { pollMs: 50, maxOutstanding: 2, lockMs: 2000 },
    deployments: [
      {
        name: MODEL,
        model: 'meta-llama/Llama-3.1-8B-Instruct',
        replicas: 1,
        maxNumSeqs: 1,
        maxModelLen: 256,
        defaultMaxTokens: 16,
      },
    ],
  },
  { redisPrefix: testPrefix('batch') },
);
let http: HttpServer;
let client: InferenceClient;

beforeAll(async () => {
  http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    path: fixture.controller.path,
    admission: fixture.controller.admission,
    batches: fixture.controller.batches,
    log: silentLogger,
  });
  client = inferenceClient(fixture.controller.address);
});

afterAll(async () => {
  client?.close();
  await http?.close();
});

const request = (id: string, over: Partial<GenerateRequest> = {}) =>
  generateRequest({ model: MODEL, requestId: id, ...over });

const queue = () => {
  const lane = fixture.controller.lanes.lanes.get(MODEL);
  if (!lane) throw new Error('no lane');
  return lane.queue;
};

/** Holds the engine's one sequence until release(). */
async function occupy(id: string): Promise<{ release(): Promise<void> }> {
  fixture.worker.script = { t: 'hang' };
  const call = client.generate(request(id), new Metadata(), { deadline: Date.now() + 30_000 });
  call.on('error', () => {});
  await new Promise((resolve) => call.once('data', resolve));
  fixture.worker.script = { t: 'stream', deltas: ['Paris'] };
  return {
    release: async () => {
      await unary(client.cancel.bind(client), { requestId: id });
    },
  };
}

const dispatched = () => fixture.worker.calls.map((c) => c.request.request?.requestId ?? '');

describe('offline batch', () => {
  it('a file with good and bad lines: one result per line, each bad one with its line number and error', async () => {
    fixture.worker.script = { t: 'stream', deltas: ['Paris'] };
    const lines = [
      chatLine('good-1', 'Capital of France?'),
      '{"custom_id": "broken", "method": "POST"',
      JSON.stringify({ custom_id: 'wrong-url', method: 'POST', url: '/v1/embeddings', body: {} }),
      chatLine('bad-body', 'Hi', { temperature: 'hot' }),
      chatLine('good-1', 'the same custom_id again'),
      chatLine('too-long', 'word '.repeat(400)),
      '',
      chatLine('other-model', 'Hi', { model: 'gpt-4o' }),
      chatLine('good-2', 'Capital of Italy?'),
    ];
    const id = await submitBatch(fixture.controller.batches, lines);
    const done = await batchStatus(fixture.controller.batches, id, 'completed');
    expect(done.counts).toEqual({ total: 8, completed: 2, failed: 6, outstanding: 0 });

    const out = await outputLines(fixture.controller.batches, id);
    expect(out.map((o) => o.custom_id)).toEqual([
      'good-1',
      null,
      'wrong-url',
      'bad-body',
      'good-1',
      'too-long',
      'other-model',
      'good-2',
    ]);
    const good = out[0];
    expect(good?.response?.status_code).toBe(200);
    expect(good?.response?.request_id).toBe(`${id}:good-1`);
    expect(good?.response?.body).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { role: 'assistant', content: 'Paris' }, finish_reason: 'stop' }],
    });
    expect(out[1]?.error).toMatchObject({ code: 'invalid_json', line: 2 });
    expect(out[2]?.error).toMatchObject({ code: 'invalid_url', line: 3 });
    expect(out[2]?.error?.message).toContain('/v1/embeddings');
    expect(out[3]?.error).toMatchObject({ code: 'invalid_body', line: 4 });
    expect(out[3]?.error?.message).toContain("Invalid type for 'temperature'");
    expect(out[4]?.error).toEqual({
      code: 'duplicate_custom_id',
      line: 5,
      message: "line 5: custom_id 'good-1' is already used on line 1; each line needs its own",
    });
    // The context check runs when the line is fed, as for an HTTP request: a 400 response, vLLM's words.
    expect(out[5]?.response?.status_code).toBe(400);
    expect(JSON.stringify(out[5]?.response?.body)).toContain(
      "This model's maximum context length is 256 tokens",
    );
    expect(out[5]?.error).toMatchObject({ code: 'invalid_argument', line: 6 });
    expect(out[6]?.error).toMatchObject({ code: 'model_not_found', line: 8 });
    expect(out[7]?.response?.status_code).toBe(200);
  });

  it('keeps at most maxOutstanding lines in the queue, and interactive requests go before the rest', async () => {
    const blocker = await occupy('prio-blocker');
    const id = await submitBatch(
      fixture.controller.batches,
      Array.from({ length: 5 }, (_, i) => chatLine(`line-${i}`, `Question ${i}`)),
    );
    const waiting = await batchWhere(
      fixture.controller.batches,
      id,
      '2 lines in the queue',
      (b) => b.counts.outstanding === 2,
    );
    expect(waiting.status).toBe('in_progress');
    expect((await queue().load()).waiting.batch).toBe(2);

    const interactive = collect(
      client.generate(
        request('interactive-1', { priorityClass: PriorityClass.PRIORITY_CLASS_INTERACTIVE }),
        new Metadata(),
        {
          deadline: Date.now() + 30_000,
        },
      ),
    );
    await until('the interactive request queued', async () =>
      (await queue().load()).waiting.interactive === 1 ? true : undefined,
    );
    // Still fed gradually: the other 3 lines wait in the batch, not in the queue.
    expect(
      (await fixture.controller.batches.getBatch({ tenant: 'default', weight: 1, cls: 'batch' }, id)).counts,
    ).toEqual({
      total: 5,
      completed: 0,
      failed: 0,
      outstanding: 2,
    });
    fixture.worker.calls.length = 0;
    await blocker.release();
    await interactive;
    const done = await batchStatus(fixture.controller.batches, id, 'completed');
    expect(done.counts.completed).toBe(5);
    expect(dispatched()[0]).toBe('interactive-1');
    expect(dispatched().slice(1).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `${id}:line-${i}`));
  });

  it('cancel: the running line is aborted, the queued one removed, the unfed ones marked cancelled', async () => {
    fixture.worker.script = { t: 'hang' };
    fixture.worker.calls.length = 0;
    const id = await submitBatch(
      fixture.controller.batches,
      Array.from({ length: 4 }, (_, i) => chatLine(`c-${i}`, `Question ${i}`)),
    );
    await until('the first line running', () => (fixture.worker.calls.length === 1 ? true : undefined));
    await batchWhere(fixture.controller.batches, id, '2 lines fed', (b) => b.counts.outstanding === 2);
    const cancelling = await fixture.controller.batches.cancelBatch(
      { tenant: 'default', weight: 1, cls: 'batch' },
      id,
    );
    expect(cancelling.status).toBe('cancelling');
    const done = await batchStatus(fixture.controller.batches, id, 'cancelled');
    fixture.worker.script = { t: 'stream', deltas: ['Paris'] };
    expect(done.counts).toEqual({ total: 4, completed: 0, failed: 4, outstanding: 0 });
    await fixture.worker.calls[0]?.whenCancelled;
    expect(fixture.worker.calls).toHaveLength(1);

    const out = await outputLines(fixture.controller.batches, id);
    expect(out[0]?.response?.status_code).toBe(499);
    expect(out[1]?.response).toMatchObject({ status_code: 499, request_id: `${id}:c-1` });
    expect(JSON.stringify(out[1]?.response?.body)).toContain('request cancelled before dispatch');
    expect(out.map((o) => o.error?.code)).toEqual([
      'cancelled',
      'cancelled',
      'batch_cancelled',
      'batch_cancelled',
    ]);
  });

  it('serves the openai SDK: files.create (multipart), batches.create/retrieve, files.content', async () => {
    const openai = new OpenAI({ baseURL: `http://${http.address}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const jsonl = [chatLine('sdk-1', 'Hello'), 'not json', chatLine('sdk-2', 'Hi')].join('\n');
    const file = await openai.files.create({
      file: await toFile(Buffer.from(jsonl), 'in.jsonl'),
      purpose: 'batch',
    });
    expect(file).toMatchObject({
      object: 'file',
      purpose: 'batch',
      filename: 'in.jsonl',
      bytes: jsonl.length,
    });
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    expect(created.status).toBe('validating');
    const done = await until('the batch completed', async () => {
      const b = await openai.batches.retrieve(created.id);
      return b.status === 'completed' ? b : undefined;
    });
    expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    const output = await (await openai.files.content(done.output_file_id ?? '')).text();
    expect(
      output
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).custom_id),
    ).toEqual(['sdk-1', null, 'sdk-2']);
    const errors = await (await openai.files.content(done.error_file_id ?? '')).text();
    expect(JSON.parse(errors.trim()).error).toMatchObject({ code: 'invalid_json', line: 2 });

    const listed: string[] = [];
    for await (const b of openai.batches.list({ limit: 2 })) listed.push(b.id);
    expect(listed[0]).toBe(created.id); // newest first, every page followed
    expect(listed.length).toBeGreaterThanOrEqual(4);
    expect(new Set(listed).size).toBe(listed.length);
    await expect(openai.batches.retrieve('batch_unknown')).rejects.toMatchObject({ status: 404 });
    await expect(
      openai.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it('takes the raw JSONL as the body too, and refuses other content types and bad list limits', async () => {
    const base = `http://${http.address}/v1`;
    const raw = await fetch(`${base}/files?purpose=batch&filename=raw.jsonl`, {
      method: 'POST',
      headers: { 'content-type': 'application/jsonl' },
      body: `${chatLine('raw-1', 'Hi')}\n`,
    });
    expect(raw.status).toBe(200);
    expect(await raw.json()).toMatchObject({ object: 'file', filename: 'raw.jsonl', purpose: 'batch' });
    const xml = await fetch(`${base}/files`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<a/>',
    });
    expect(xml.status).toBe(415);
    const list = await fetch(`${base}/batches?limit=1000`);
    expect(list.status).toBe(400);
    expect(((await list.json()) as { error: { message: string } }).error.message).toBe(
      "Invalid 'limit': must be an integer from 1 to 100, got '1000'.",
    );
    expect((await fetch(`${base}/batches/%E0%A4%A`)).status).toBe(400);
  });

  it('refuses a file over the line limit, and an empty one, with the limit in the message', async () => {
    const upload = (content: string) =>
      fixture.controller.batches.uploadFile(
        { tenant: 'default', weight: 1, cls: 'batch' },
        { filename: 'x.jsonl', purpose: 'batch', content: Buffer.from(content) },
      );
    await expect(upload('\n\n')).rejects.toThrow('the file has no lines');
    const tooMany = Array.from({ length: fixture.controller.batches.config.maxLines + 1 }, () => '{}').join(
      '\n',
    );
    await expect(upload(tooMany)).rejects.toThrow(
      `the file has ${fixture.controller.batches.config.maxLines + 1} requests; a batch may have at most ${fixture.controller.batches.config.maxLines}`,
    );
  });
});
