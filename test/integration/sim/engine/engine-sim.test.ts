/**
 * The engine simulator as a real process, driven over HTTP like vLLM: start-up delay, SSE format, usage equal to
 * the streamed tokens, vLLM's error texts and statuses, API key, unknown flag, cancel mid-stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, SimProcess, sseEvents } from './sim-process.ts';

const KEY = 'sekret';
const MODEL = 'llama-3.1-8b-instruct';
let sim: SimProcess;
let base: string;
let closedBeforeStartup: boolean;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read field by field and checked by the assertions
type Json = any;
const json = async (r: Response | Promise<Response>): Promise<Json> => (await r).json();

const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
const post = (path: string, body: unknown, h: Record<string, string> = headers) =>
  fetch(`${base}${path}`, { method: 'POST', headers: h, body: JSON.stringify(body) });

async function running(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^vllm:num_requests_running\{[^}]*\} (\S+)$/m.exec(text);
  if (!m) throw new Error('no vllm:num_requests_running');
  return Number(m[1]);
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  sim = new SimProcess(
    [
      'serve',
      'meta-llama/Llama-3.1-8B-Instruct',
      '--served-model-name',
      MODEL,
      '--max-model-len=256',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--api-key',
      KEY,
      '--sim-ttft-ms',
      '5',
      '--sim-itl-ms',
      '2',
    ],
    // Start-up delay from the environment: a deployment sets knobs without changing args.
    { CORRAL_SIM_STARTUP_MS: '1500' },
  );
  await sim.waitForOutput('Model loading took');
  closedBeforeStartup = await fetch(`${base}/health`).then(
    () => false,
    () => true,
  );
  await sim.waitForOutput('Application startup complete.');
});

afterAll(async () => {
  await sim?.stop();
});

describe('engine simulator process', () => {
  it('opens its port only after the start-up delay, then is healthy', async () => {
    expect(closedBeforeStartup).toBe(true);
    expect(sim.stdout).toMatch(/GPU KV cache size: [\d,]+ tokens/);
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('');
    expect(await json(fetch(`${base}/version`))).toEqual({
      version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
    });
  });

  it('lists the served model with max_model_len', async () => {
    const body = await json(fetch(`${base}/v1/models`, { headers }));
    expect(body.data[0]).toMatchObject({ id: MODEL, object: 'model', max_model_len: 256 });
  });

  it('streams a completion in vLLM SSE format with usage equal to the streamed tokens', async () => {
    const prompt = 'The capital of France is';
    const res = await post('/v1/completions', {
      model: MODEL,
      prompt,
      max_tokens: 12,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseEvents(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    const tokenChunks = chunks.slice(0, -1);
    expect(tokenChunks.every((c) => c.object === 'text_completion')).toBe(true);
    const ids = tokenChunks.flatMap((c) => c.choices[0].token_ids);
    expect(ids).toHaveLength(12);
    expect(usageChunk.usage.completion_tokens).toBe(12);
    expect(tokenChunks.at(-1).choices[0].finish_reason).toBe('length');
    const promptIds = tokenChunks[0].choices[0].prompt_token_ids;
    expect(usageChunk.usage.prompt_tokens).toBe(promptIds.length);
    const tok = await json(post('/tokenize', { model: MODEL, prompt }));
    expect(tok).toEqual({ count: promptIds.length, max_model_len: 256, tokens: promptIds });
    const text = tokenChunks.map((c) => c.choices[0].text).join('');
    const detok = await json(post('/detokenize', { model: MODEL, tokens: ids }));
    expect(detok.prompt).toBe(text);
  });

  it('streams a chat completion: role chunk first, usage chunk last, counts from the Llama 3 template', async () => {
    const messages = [{ role: 'user', content: 'Say hi' }];
    const res = await post('/v1/chat/completions', {
      model: MODEL,
      messages,
      max_tokens: 5,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = sseEvents(await res.text())
      .slice(0, -1)
      .map((e) => JSON.parse(e));
    expect(chunks[0].object).toBe('chat.completion.chunk');
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const content = chunks.slice(1, -1);
    expect(content).toHaveLength(5);
    expect(content.at(-1).choices[0].finish_reason).toBe('length');
    const tok = await json(post('/tokenize', { model: MODEL, messages }));
    expect(chunks.at(-1).usage).toEqual({
      prompt_tokens: tok.count,
      completion_tokens: 5,
      total_tokens: tok.count + 5,
    });
  });

  it('is deterministic for a (seed, prompt) pair and continues exactly from prompt + generated token ids', async () => {
    const ask = async (prompt: string | number[], max_tokens: number) => {
      const body = { model: MODEL, prompt, max_tokens, seed: 7, ignore_eos: true, return_token_ids: true };
      return (await json(post('/v1/completions', body))).choices[0];
    };
    const a = await ask('Tell me a story', 10);
    const b = await ask('Tell me a story', 10);
    expect(b.text).toBe(a.text);
    const head = await ask('Tell me a story', 4);
    const rest = await ask([...head.prompt_token_ids, ...head.token_ids], 6);
    expect([...head.token_ids, ...rest.token_ids]).toEqual(a.token_ids);
  });

  it('honours X-Request-Id', async () => {
    const res = await post(
      '/v1/completions',
      { model: MODEL, prompt: 'hi', max_tokens: 1 },
      { ...headers, 'x-request-id': 'req-42' },
    );
    expect(res.headers.get('x-request-id')).toBe('req-42');
    expect((await json(res)).id).toBe('cmpl-req-42');
  });

  it('answers errors with vLLM status codes and texts', async () => {
    const unknown = await post('/v1/completions', { model: 'nope', prompt: 'hi' });
    expect(unknown.status).toBe(404);
    expect(await json(unknown)).toEqual({
      error: { message: 'The model `nope` does not exist.', type: 'NotFoundError', param: null, code: 404 },
    });
    const long = 'word '.repeat(300);
    const tooLong = await post('/v1/completions', { model: MODEL, prompt: long });
    expect(tooLong.status).toBe(400);
    expect((await json(tooLong)).error.message).toMatch(
      /^This model's maximum context length is 256 tokens\. However, your request has \d+ input tokens\. Please reduce the length of the input messages\.$/,
    );
    const tooMany = await post('/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 300 });
    expect(tooMany.status).toBe(400);
    expect((await json(tooMany)).error.message).toBe(
      "'max_tokens' or 'max_completion_tokens' is too large: 300. This model's maximum context length is 256 tokens and your request has 2 input tokens (300 > 256 - 2).",
    );
    const n2 = await post('/v1/completions', { model: MODEL, prompt: 'hi', n: 2 });
    expect(n2.status).toBe(400);
    expect((await json(n2)).error.type).toBe('BadRequestError');
  });

  it('answers 401 on /v1/* without the API key, but not on /health', async () => {
    const res = await fetch(`${base}/v1/models`);
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: 'Unauthorized' });
    const wrong = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer wrong' } });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it('aborts a request whose client disconnects mid-stream', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: MODEL,
        prompt: 'Count',
        max_tokens: 200,
        ignore_eos: true,
        stream: true,
      }),
      signal: ctl.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    expect(await running()).toBe(1);
    ctl.abort();
    let n = 1;
    for (let i = 0; i < 200 && n !== 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      n = await running();
    }
    expect(n).toBe(0);
  });
});

describe('engine simulator command line', () => {
  it('rejects an unknown flag like vLLM argparse, exit code 2', async () => {
    const p = new SimProcess(['serve', 'm', '--disable-log-requests', '--port', '1']);
    expect(await p.exited).toBe(2);
    expect(p.stderr).toContain('vllm serve: error: unrecognized arguments: --disable-log-requests');
  });
});
