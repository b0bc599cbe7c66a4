import { describe, expect, it } from 'vitest';
import {
  completedFinished,
  parseRequest,
  planAttempt,
  requestOf,
  serializeRequest,
  shareParsedBody,
  shiftEvent,
  stripTokenIds,
} from '../../../../controller/dispatch/attempt-plan.ts';
import type { Progress } from '../../../../controller/queue/stream-log.ts';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  PriorityClass,
} from '../../../../proto/gen/corral/v1/inference.ts';

const request: GenerateRequest = {
  model: 'm',
  requestId: 'r1',
  input: { $case: 'prompt', value: 'Tell me about the Rocky Mountains' },
  maxTokens: 10,
  sampling: { seed: 7, stop: [], ignoreEos: false, minTokens: 0 },
  priority: 0,
  returnTokenIds: false,
  priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
};

const progress = (next: number, over: Partial<Progress> = {}): Progress => ({
  started: { model: 'm', promptTokens: 3, promptTokenIds: [101, 102, 103] },
  tokenIds: Array.from({ length: next }, (_, i) => 500 + i),
  text: 'x'.repeat(next),
  nextTokenIndex: next,
  ended: false,
  ...over,
});

describe('serializeRequest', () => {
  it('round-trips, and equal requests serialize equal (the idempotency hash depends on it)', () => {
    const body = serializeRequest(request);
    expect(parseRequest(body)).toEqual(request);
    expect(serializeRequest({ ...request })).toBe(body);
    expect(serializeRequest({ ...request, maxTokens: 11 })).not.toBe(body);
  });
});

describe('planAttempt', () => {
  it('a first attempt sends the request as is, asking for token ids', () => {
    const plan = planAttempt(request, undefined);
    expect(plan).toEqual({
      t: 'run',
      offset: 0,
      prompt: undefined,
      request: { ...request, returnTokenIds: true },
    });
  });

  it('an attempt with nothing generated yet starts over', () => {
    expect(planAttempt(request, progress(0))).toMatchObject({ t: 'run', offset: 0 });
  });

  it('a continuation sends prompt ids + generated ids, the remaining budget and the same seed', () => {
    const plan = planAttempt(request, progress(4));
    expect(plan.t).toBe('run');
    if (plan.t !== 'run') return;
    expect(plan.offset).toBe(4);
    expect(plan.request.input).toEqual({
      $case: 'promptTokenIds',
      value: { ids: [101, 102, 103, 500, 501, 502, 503] },
    });
    expect(plan.request.maxTokens).toBe(6);
    expect(plan.request.sampling?.seed).toBe(7);
    expect(plan.request.returnTokenIds).toBe(true);
  });

  it('every token generated already: nothing to run, only the end to write', () => {
    expect(planAttempt(request, progress(10))).toMatchObject({ t: 'complete', offset: 10 });
  });
});

describe('shiftEvent', () => {
  const delta = (index: number, n: number): GenerateEvent => ({
    requestId: 'r1',
    event: { $case: 'delta', value: { text: 'ab', index, tokenIds: [1, 2].slice(0, n), tokenCount: n } },
  });
  const started: GenerateEvent = {
    requestId: 'r1',
    event: { $case: 'started', value: { model: 'm', promptTokens: 7, promptTokenIds: [] } },
  };
  const finished: GenerateEvent = {
    requestId: 'r1',
    event: {
      $case: 'finished',
      value: {
        reason: FinishReason.FINISH_REASON_LENGTH,
        stopReason: '',
        usage: { promptTokens: 7, completionTokens: 6, totalTokens: 13 },
        timing: undefined,
      },
    },
  };

  it('passes a first attempt through', () => {
    const s = { offset: 0, prompt: undefined };
    expect(shiftEvent('r1', started, s)).toEqual(started);
    expect(shiftEvent('r1', delta(3, 2), s)).toEqual(delta(3, 2));
    expect(shiftEvent('r1', finished, s)).toEqual(finished);
  });

  it("drops a continuation's Started, shifts its indices and counts the whole request in usage", () => {
    const s = { offset: 4, prompt: { model: 'm', promptTokens: 3, promptTokenIds: [101, 102, 103] } };
    expect(shiftEvent('r1', started, s)).toBeUndefined();
    expect(shiftEvent('r1', delta(0, 2), s)).toEqual(delta(4, 2));
    const f = shiftEvent('r1', finished, s)?.event;
    expect(f?.$case === 'finished' && f.value.usage).toEqual({
      promptTokens: 3,
      completionTokens: 10,
      totalTokens: 13,
    });
  });

  it('completedFinished reports the tokens the earlier attempts generated', () => {
    const f = completedFinished('r1', {
      offset: 10,
      prompt: { model: 'm', promptTokens: 3, promptTokenIds: [] },
    });
    expect(f.event?.$case === 'finished' && f.event.value.usage).toEqual({
      promptTokens: 3,
      completionTokens: 10,
      totalTokens: 13,
    });
  });
});

describe('stripTokenIds', () => {
  it('removes prompt and delta token ids, keeps the rest', () => {
    const s = stripTokenIds({
      requestId: 'r1',
      event: { $case: 'started', value: { model: 'm', promptTokens: 2, promptTokenIds: [1, 2] } },
    });
    expect(s.event).toEqual({ $case: 'started', value: { model: 'm', promptTokens: 2, promptTokenIds: [] } });
    const d = stripTokenIds({
      requestId: 'r1',
      event: { $case: 'delta', value: { text: 'hi', index: 0, tokenIds: [9], tokenCount: 1 } },
    });
    expect(d.event).toEqual({ $case: 'delta', value: { text: 'hi', index: 0, tokenIds: [], tokenCount: 1 } });
  });
});

describe('requestOf', () => {
  it('parses a body once per holder, and a holder of the same body can share that parse', () => {
    const body = serializeRequest(request);
    const submitted = { body };
    const parsed = requestOf(submitted);
    expect(parsed).toEqual(parseRequest(body));
    expect(requestOf(submitted)).toBe(parsed);
    const taken = { body: `${body}` };
    shareParsedBody(submitted, taken);
    expect(requestOf(taken)).toBe(parsed);
  });

  it('does not share a parse with a holder of another body', () => {
    const submitted = { body: serializeRequest(request) };
    requestOf(submitted);
    const other = { body: serializeRequest({ ...request, maxTokens: 11 }) };
    shareParsedBody(submitted, other);
    expect(requestOf(other).maxTokens).toBe(11);
  });
});
