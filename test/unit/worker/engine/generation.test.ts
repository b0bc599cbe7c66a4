import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import type { GenerateEvent, GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import type { EngineHttpClient } from '../../../../worker/engine/engine-client.ts';
import { runGeneration } from '../../../../worker/engine/generation.ts';

const req: GenerateRequest = {
  model: 'm',
  requestId: 'r1',
  input: { $case: 'prompt', value: 'Hi' },
  maxTokens: 2,
  sampling: undefined,
  priority: 0,
  returnTokenIds: false,
  priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
};

/** A fake engine HTTP client whose POST answers with `respond()`; records what was sent. */
function engine(respond: (signal: AbortSignal) => Response | Promise<Response>) {
  const sent: { path: string; body: unknown; headers: Record<string, string> }[] = [];
  const http: EngineHttpClient = {
    health: async () => 200,
    metrics: async () => '',
    maxModelLen: async () => undefined,
    version: async () => undefined,
    post: async (_address, path, body, headers, signal) => {
      sent.push({ path, body, headers });
      return respond(signal);
    },
  };
  return { http, sent };
}

/** An SSE body delivered in the given raw chunks. */
function sse(chunks: string[], { end = true } = {}): Response {
  const enc = new TextEncoder();
  let i = 0;
  // pull-based: an error raised in start() would discard chunks the reader has not taken yet
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const c = chunks[i++];
      if (c !== undefined) controller.enqueue(enc.encode(c));
      else if (end) controller.close();
      else controller.error(new Error('socket hang up'));
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

async function run(http: EngineHttpClient, signal = new AbortController().signal) {
  const events: GenerateEvent[] = [];
  const error = await runGeneration({
    target: { engineId: 'e1', address: '127.0.0.1:1', servedModel: 'served' },
    request: req,
    headers: { 'x-request-id': 'r1' },
    signal,
    http,
    clock: new ManualClock(0),
    emit: (e) => {
      events.push(e);
    },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { events, error };
}

const tok = (text: string, id: number, finish: string | null = null) =>
  `data: ${JSON.stringify({ model: 'served', choices: [{ index: 0, text, token_ids: [id], finish_reason: finish }] })}\n\n`;
const USAGE = `data: ${JSON.stringify({ model: 'served', choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })}\n\n`;

describe('runGeneration', () => {
  it('posts the translated request with headers and streams events, even when chunks split events', async () => {
    const whole = [tok('a', 1), tok('b', 2, 'length'), USAGE, 'data: [DONE]\n\n'].join('');
    const pieces = whole.match(/.{1,7}/gs) ?? [];
    const { http, sent } = engine(() => sse(pieces));
    const { events, error } = await run(http);
    expect(error).toBeUndefined();
    expect(sent[0]?.path).toBe('/v1/completions');
    expect(sent[0]?.headers).toEqual({ 'x-request-id': 'r1' });
    expect(events.map((e) => e.event?.$case)).toEqual(['started', 'delta', 'delta', 'finished']);
  });

  it.each([
    [400, 'invalid_argument'],
    [404, 'not_found'],
    [429, 'resource_exhausted'],
    [503, 'unavailable'],
    [500, 'unavailable'],
  ])('maps engine HTTP %i to %s with the engine message', async (code, expected) => {
    const { http } = engine(
      () =>
        new Response(
          JSON.stringify({ error: { message: `engine says ${code}`, type: 'X', param: null, code } }),
          {
            status: code,
          },
        ),
    );
    const { error } = await run(http);
    expect(error).toMatchObject({ code: expected, message: `engine says ${code}` });
  });

  it('reports an unreachable engine as unavailable', async () => {
    const { http } = engine(() => {
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      });
    });
    const { error } = await run(http);
    expect(error).toMatchObject({
      code: 'unavailable',
      message: 'engine e1 unreachable at 127.0.0.1:1: connection refused or reset',
    });
  });

  it('reports a stream that ends without [DONE] as broken after N tokens', async () => {
    const { http } = engine(() => sse([tok('a', 1)]));
    const { events, error } = await run(http);
    expect(error).toMatchObject({ code: 'unavailable', message: 'engine e1 stream broke after 1 tokens' });
    expect(events.map((e) => e.event?.$case)).toEqual(['started', 'delta']);
  });

  it('reports a connection that breaks mid-stream as broken after N tokens', async () => {
    const { http } = engine(() => sse([tok('a', 1), tok('b', 2)], { end: false }));
    const { error } = await run(http);
    expect(error).toMatchObject({ code: 'unavailable' });
    expect((error as Error).message).toMatch(/^engine e1 stream broke after 2 tokens: /);
  });

  it('passes on a mid-stream error event with its status', async () => {
    const errorEvent = `data: ${JSON.stringify({ error: { message: 'boom', type: 'InternalServerError', code: 500 } })}\n\ndata: [DONE]\n\n`;
    const { http } = engine(() => sse([tok('a', 1), errorEvent]));
    const { error } = await run(http);
    expect(error).toMatchObject({ code: 'unavailable', message: 'boom', httpStatus: 500 });
  });

  it('rejects an invalid request before calling the engine', async () => {
    const { http, sent } = engine(() => sse([]));
    const events: GenerateEvent[] = [];
    const error = await runGeneration({
      target: { engineId: 'e1', address: 'x', servedModel: 's' },
      request: { ...req, maxTokens: -1 },
      headers: {},
      signal: new AbortController().signal,
      http,
      clock: new ManualClock(0),
      emit: (e) => {
        events.push(e);
      },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'invalid_argument',
      message: 'invalid request: request.max_tokens: must be > 0, got -1',
    });
    expect(sent).toHaveLength(0);
  });

  it('turns an abort into a cancellation', async () => {
    const abort = new AbortController();
    const { http } = engine(
      (signal) =>
        new Promise<Response>((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }),
    );
    const pending = run(http, abort.signal);
    abort.abort();
    const { error } = await pending;
    expect(error).toMatchObject({ code: 'cancelled' });
  });
});
