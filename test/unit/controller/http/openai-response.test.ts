import { describe, expect, it } from 'vitest';
import { CorralError, ValidationError } from '../../../../common/errors.ts';
import { HttpError, mapError } from '../../../../controller/http/http-errors.ts';
import { modelList, OpenAiResponse, type ResponseMeta } from '../../../../controller/http/openai-response.ts';
import { FinishReason, type GenerateEvent } from '../../../../proto/gen/corral/v1/inference.ts';

const meta: ResponseMeta = {
  endpoint: 'chat',
  requestId: 'r',
  model: 'm',
  created: 100,
  includeUsage: false,
};
const started: GenerateEvent = {
  requestId: 'r',
  event: { $case: 'started', value: { model: 'served-m', promptTokens: 3, promptTokenIds: [] } },
};
const delta = (text: string): GenerateEvent => ({
  requestId: 'r',
  event: { $case: 'delta', value: { text, index: 0, tokenIds: [], tokenCount: 1 } },
});
const finished = (reason: FinishReason, stopReason = ''): GenerateEvent => ({
  requestId: 'r',
  event: {
    $case: 'finished',
    value: { reason, stopReason, usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 } },
  },
});

describe('OpenAiResponse', () => {
  it('turns chat events into OpenAI chunks, taking the served model name from Started', () => {
    const r = new OpenAiResponse({ ...meta, includeUsage: true });
    const chunks = [
      started,
      delta('a'),
      delta(''),
      delta('b'),
      finished(FinishReason.FINISH_REASON_STOP, '\n'),
    ].flatMap((e) => r.chunks(e));
    expect(chunks).toEqual([
      {
        id: 'chatcmpl-r',
        object: 'chat.completion.chunk',
        created: 100,
        model: 'served-m',
        choices: [
          { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
        ],
      },
      expect.objectContaining({
        choices: [{ index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: null }],
      }),
      expect.objectContaining({
        choices: [{ index: 0, delta: { content: 'b' }, logprobs: null, finish_reason: null }],
      }),
      expect.objectContaining({
        choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop', stop_reason: '\n' }],
      }),
      {
        id: 'chatcmpl-r',
        object: 'chat.completion.chunk',
        created: 100,
        model: 'served-m',
        choices: [],
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      },
    ]);
    expect(r.body()).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { role: 'assistant', content: 'ab' }, finish_reason: 'stop', stop_reason: '\n' }],
    });
  });

  it('turns completion events into text_completion chunks without a role chunk', () => {
    const r = new OpenAiResponse({ ...meta, endpoint: 'completion' });
    const chunks = [started, delta('x'), finished(FinishReason.FINISH_REASON_LENGTH)].flatMap((e) =>
      r.chunks(e),
    );
    expect(chunks.map((c) => (c as { choices: unknown[] }).choices)).toEqual([
      [{ index: 0, text: 'x', logprobs: null, finish_reason: null }],
      [{ index: 0, text: '', logprobs: null, finish_reason: 'length', stop_reason: null }],
    ]);
    expect(r.body()).toEqual({
      id: 'cmpl-r',
      object: 'text_completion',
      created: 100,
      model: 'served-m',
      choices: [{ index: 0, text: 'x', logprobs: null, finish_reason: 'length', stop_reason: null }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
  });

  it('refuses to make a body before Finished', () => {
    const r = new OpenAiResponse(meta);
    r.chunks(started);
    expect(r.finished).toBe(false);
    expect(() => r.body()).toThrow(/before the Finished event/);
  });

  it('lists models', () => {
    expect(modelList([{ id: 'a', maxModelLen: 8 }], 1).data).toEqual([
      { id: 'a', object: 'model', created: 1, owned_by: 'corral', root: 'a', parent: null, max_model_len: 8 },
    ]);
  });
});

describe('mapError', () => {
  it.each([
    [new CorralError('invalid_argument', 'x'), 400],
    [new CorralError('failed_precondition', 'x'), 400],
    [new CorralError('unauthenticated', 'x'), 401],
    [new CorralError('permission_denied', 'x'), 403],
    [new CorralError('not_found', 'x'), 404],
    [new CorralError('already_exists', 'x'), 409],
    [new CorralError('resource_exhausted', 'x'), 429],
    [new CorralError('cancelled', 'x'), 499],
    [new CorralError('internal', 'x'), 500],
    [new CorralError('unavailable', 'x'), 503],
    [new CorralError('deadline_exceeded', 'x'), 504],
    [new HttpError(413, 'x'), 413],
    [new Error('x'), 500],
    ['a string', 500],
  ])('maps %s to %i', (e, status) => {
    const m = mapError(e);
    expect(m.status).toBe(status);
    expect(m.body.error.code).toBe(status);
    expect(m.body.error.message).toContain(typeof e === 'string' ? e : 'x');
    expect(m.headers['retry-after'] !== undefined).toBe(status === 429);
  });

  it('blames the first field of a ValidationError', () => {
    const e = new ValidationError('request', [
      { path: 'sampling.top_k', message: 'bad' },
      { path: 'max_tokens', message: 'bad' },
    ]);
    expect(mapError(e).body.error.param).toBe('sampling.top_k');
  });
});
