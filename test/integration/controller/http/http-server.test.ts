/**
 * The OpenAI-compatible server over real HTTP on 127.0.0.1, with a scripted RequestPath: translation both
 * ways, SSE framing, error statuses, body limit, and cancellation by disconnect.
 */
import { request } from 'node:http';
import { beforeEach, describe, expect, it } from 'vitest';
import { CorralError, ValidationError } from '../../../../common/errors.ts';
import { createLogger } from '../../../../common/log.ts';
import { openAdmission } from '../../../../controller/admission/admission.ts';
import { startHttpServer } from '../../../../controller/http/http-server.ts';
import { FinishReason, PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { answer, FakeRequestPath, usePathServer } from './fake-request-path.ts';

const MAX_BODY = 4096;
const path = new FakeRequestPath();
const base = usePathServer(path, { admission: openAdmission(), maxBodyBytes: MAX_BODY });

beforeEach(() => {
  path.calls.length = 0;
  path.script = (req) => answer(req, ['Hello', ', ', 'world'], 5);
});

function post(route: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base()}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The `data:` payloads of an SSE body, in order. */
function sse(text: string): string[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .split('\n\n')
    .filter((f) => f !== '')
    .map((f) => {
      expect(f.startsWith('data: ')).toBe(true);
      return f.slice('data: '.length);
    });
}

const chat = { model: 'm', messages: [{ role: 'user', content: 'Hi' }] };

describe('chat completions', () => {
  it('answers a non-streaming request and hands the path the translated request and headers', async () => {
    const res = await post(
      '/v1/chat/completions',
      { ...chat, max_completion_tokens: 7, stop: 'END', seed: 3, priority: -1, temperature: 0.5 },
      {
        authorization: 'Bearer sk-tenant-a',
        'x-request-id': 'req-42',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-42');
    expect(await res.json()).toEqual({
      id: 'chatcmpl-req-42',
      object: 'chat.completion',
      created: expect.any(Number),
      model: 'm',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello, world' },
          logprobs: null,
          finish_reason: 'stop',
          stop_reason: null,
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
    });
    const [call] = path.calls;
    expect(call?.req).toEqual({
      model: 'm',
      requestId: 'req-42',
      input: { $case: 'chat', value: { messages: [{ role: 'user', content: 'Hi' }] } },
      maxTokens: 7,
      sampling: { temperature: 0.5, seed: 3, stop: ['END'], ignoreEos: false, minTokens: 0 },
      priority: -1,
      returnTokenIds: false,
      priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    });
    expect(call?.ctx.apiKey).toBe('sk-tenant-a');
    expect(call?.ctx.requestId).toBe('req-42');
    expect(call?.ctx.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('makes a request id when the client sends none, and echoes it', async () => {
    const res = await post('/v1/chat/completions', chat);
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(((await res.json()) as { id: string }).id).toBe(`chatcmpl-${id}`);
    expect(path.calls[0]?.req.requestId).toBe(id);
  });

  it('streams a role chunk, content deltas, the finish reason, the usage chunk and [DONE]', async () => {
    path.script = (req) => answer(req, ['Hel', 'lo'], 4, FinishReason.FINISH_REASON_LENGTH);
    const res = await post(
      '/v1/chat/completions',
      { ...chat, stream: true, stream_options: { include_usage: true } },
      { 'x-request-id': 's-1' },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const frames = sse(await res.text());
    expect(frames.at(-1)).toBe('[DONE]');
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
    for (const c of chunks) {
      expect(c).toMatchObject({ id: 'chatcmpl-s-1', object: 'chat.completion.chunk', model: 'm' });
    }
    expect(chunks.map((c) => c.choices)).toEqual([
      [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: 'Hel' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: 'lo' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length', stop_reason: null }],
      [],
    ]);
    expect(chunks.at(-1).usage).toEqual({ prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 });
  });

  it('sends no usage chunk unless asked', async () => {
    const res = await post('/v1/chat/completions', { ...chat, stream: true });
    const frames = sse(await res.text());
    expect(frames.filter((f) => f.includes('"usage"'))).toEqual([]);
    expect(frames.at(-1)).toBe('[DONE]');
  });
});

describe('completions', () => {
  it('answers non-streaming with text_completion and usage', async () => {
    const res = await post('/v1/completions', { model: 'm', prompt: 'Once', max_tokens: 3 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      object: 'text_completion',
      choices: [{ index: 0, text: 'Hello, world', finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
    });
    expect(path.calls[0]?.req.input).toEqual({ $case: 'prompt', value: 'Once' });
  });

  it('streams text chunks ending with the finish reason and [DONE]', async () => {
    const res = await post('/v1/completions', { model: 'm', prompt: [1, 2, 3], stream: true });
    const frames = sse(await res.text());
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
    expect(chunks.map((c) => [c.object, c.choices[0].text, c.choices[0].finish_reason])).toEqual([
      ['text_completion', 'Hello', null],
      ['text_completion', ', ', null],
      ['text_completion', 'world', null],
      ['text_completion', '', 'stop'],
    ]);
    expect(path.calls[0]?.req.input).toEqual({ $case: 'promptTokenIds', value: { ids: [1, 2, 3] } });
  });
});

describe('errors', () => {
  it.each([
    ['not found', new CorralError('not_found', 'The model `x` does not exist.'), 404, 'NotFoundError'],
    ['bad argument', new CorralError('invalid_argument', 'max_tokens too large'), 400, 'BadRequestError'],
    ['no replica', new CorralError('unavailable', 'no ready replica'), 503, 'ServiceUnavailableError'],
    ['deadline', new CorralError('deadline_exceeded', 'deadline exceeded'), 504, 'GatewayTimeoutError'],
    ['unknown key', new CorralError('unauthenticated', 'unknown API key'), 401, 'AuthenticationError'],
    ['bug', new Error('boom'), 500, 'InternalServerError'],
  ])(
    'maps a refusal before the first event (%s) to its status, streaming or not',
    async (_, error, status, type) => {
      path.script = () => [{ t: 'throw', error }];
      for (const stream of [false, true]) {
        const res = await post('/v1/chat/completions', { ...chat, stream });
        expect(res.status).toBe(status);
        const body = (await res.json()) as { error: Record<string, unknown> };
        expect(body.error).toMatchObject({ type, code: status });
        expect(body.error.message).toContain(error.message);
      }
    },
  );

  it('names the field of a validation error from the path', async () => {
    path.script = () => [
      { t: 'throw', error: new ValidationError('request', [{ path: 'max_tokens', message: 'too big' }]) },
    ];
    const res = await post('/v1/chat/completions', chat);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe('max_tokens');
  });

  it('maps a gRPC status from a worker (RESOURCE_EXHAUSTED) to 429 with Retry-After', async () => {
    const grpcError = Object.assign(new Error('8 RESOURCE_EXHAUSTED: queue full'), {
      code: 8,
      details: 'queue full',
      metadata: undefined,
    });
    path.script = () => [{ t: 'throw', error: grpcError }];
    const res = await post('/v1/completions', { model: 'm', prompt: 'x' });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('queue full');
  });

  it('takes Retry-After from the refusal when it says how long', async () => {
    path.script = () => [
      { t: 'throw', error: new CorralError('resource_exhausted', 'quota', { retryAfterMs: 2500 }) },
    ];
    const res = await post('/v1/completions', { model: 'm', prompt: 'x' });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
  });

  it('ends a failing stream with an error event and [DONE]', async () => {
    path.script = (req) => [
      ...answer(req, ['a', 'b'], 1).slice(0, 2),
      { t: 'throw', error: new CorralError('unavailable', 'worker lost') },
    ];
    const res = await post('/v1/chat/completions', { ...chat, stream: true });
    expect(res.status).toBe(200);
    const frames = sse(await res.text());
    expect(frames.at(-1)).toBe('[DONE]');
    expect(JSON.parse(frames.at(-2) ?? '')).toEqual({
      error: { message: 'worker lost', type: 'ServiceUnavailableError', param: null, code: 503 },
    });
  });

  it('refuses a body over the limit with 413, declared or chunked, before calling the path', async () => {
    const big = JSON.stringify({ ...chat, messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY) }] });
    const res = await post('/v1/chat/completions', big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      `${MAX_BODY} bytes`,
    );

    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${base()}/v1/chat/completions`, { method: 'POST' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write(big.slice(0, 3000));
      req.end(big.slice(3000));
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error.type).toBe('RequestTooLargeError');
    expect(path.calls).toEqual([]);
  });

  it.each([
    ['malformed JSON', '{"model": ', 400, null],
    ['empty body', '', 400, null],
    ['wrong type', { ...chat, temperature: 'hot' }, 400, 'temperature'],
    ['missing model', { messages: chat.messages }, 400, 'model'],
    ['unknown field', { ...chat, bogus: 1 }, 400, 'bogus'],
  ])('refuses %s with %i naming %s, never a 500', async (_, body, status, param) => {
    const res = await post('/v1/chat/completions', body);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { param: unknown } }).error.param).toBe(param);
    expect(path.calls).toEqual([]);
  });

  it('answers 401 for an Authorization header that is not a bearer key', async () => {
    const res = await post('/v1/chat/completions', chat, { authorization: 'Basic dTpw' });
    expect(res.status).toBe(401);
  });

  it('answers unknown routes with 404 and wrong methods with 405', async () => {
    expect((await fetch(`${base()}/v1/embeddings`, { method: 'POST' })).status).toBe(404);
    const res = await fetch(`${base()}/v1/chat/completions`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});

describe('cancellation', () => {
  it('a client that disconnects mid-stream aborts the request signal', async () => {
    path.script = (req) => [...answer(req, ['first'], 1).slice(0, 2), { t: 'hang' }];
    const res = await post('/v1/chat/completions', { ...chat, stream: true });
    const reader = res.body?.getReader();
    const first = await reader?.read();
    expect(new TextDecoder().decode(first?.value)).toContain('chat.completion.chunk');
    await reader?.cancel();
    await path.calls[0]?.aborted;
    expect(path.calls[0]?.ctx.signal.aborted).toBe(true);
  });

  it('a client that disconnects while waiting for a non-streaming answer aborts it too', async () => {
    path.script = () => [{ t: 'hang' }];
    const req = request(`${base()}/v1/completions`, { method: 'POST' });
    req.on('error', () => {});
    req.end(JSON.stringify({ model: 'm', prompt: 'y' }));
    await expect.poll(() => path.calls.length).toBe(1);
    expect(path.calls[0]?.ctx.signal.aborted).toBe(false);
    req.destroy();
    await path.calls[0]?.aborted;
    expect(path.calls[0]?.ctx.signal.aborted).toBe(true);
  });

  it('close() cancels requests still running after the grace period', async () => {
    const own = new FakeRequestPath();
    own.script = () => [{ t: 'hang' }];
    const s = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      path: own,
      admission: openAdmission(),
      log: createLogger('t', { level: 'error' }),
    });
    const pending = fetch(`http://${s.address}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x' }),
    }).then(
      (r) => r.status,
      () => 'reset',
    );
    await expect.poll(() => own.calls.length).toBe(1);
    await s.close(10);
    expect(own.calls[0]?.ctx.signal.aborted).toBe(true);
    await pending;
  });
});

describe('models and health', () => {
  it('lists models in OpenAI shape', async () => {
    const res = await fetch(`${base()}/v1/models`);
    expect(await res.json()).toEqual({
      object: 'list',
      data: [
        {
          id: 'm',
          object: 'model',
          created: expect.any(Number),
          owned_by: 'corral',
          root: 'm',
          parent: null,
          max_model_len: 4096,
        },
      ],
    });
  });

  it('answers /health with 200', async () => {
    expect((await fetch(`${base()}/health`)).status).toBe(200);
  });
});
