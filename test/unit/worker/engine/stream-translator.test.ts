import { describe, expect, it } from 'vitest';
import { FinishReason } from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineHttpError } from '../../../../worker/engine/engine-errors.ts';
import { StreamTranslator } from '../../../../worker/engine/stream-translator.ts';

const opts = { engineId: 'e1', requestId: 'r1', startedAtMs: 1000 };

describe('StreamTranslator', () => {
  it('turns completions chunks into Started, deltas and Finished with exact usage', () => {
    const t = new StreamTranslator({ ...opts, returnTokenIds: true });
    const events = [
      ...t.onChunk({ model: 'm', choices: [{ index: 0, text: '', prompt_token_ids: [1, 2, 3] }] }, 1000),
      ...t.onChunk({ model: 'm', choices: [{ index: 0, text: 'Hel', token_ids: [10, 11] }] }, 1010),
      ...t.onChunk(
        {
          model: 'm',
          choices: [{ index: 0, text: 'lo', token_ids: [12], finish_reason: 'stop', stop_reason: '\n' }],
        },
        1020,
      ),
      ...t.onChunk(
        { model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 } },
        1030,
      ),
      t.finish(1040),
    ];
    expect(events.map((e) => e.event)).toEqual([
      { $case: 'started', value: { model: 'm', promptTokens: 3, promptTokenIds: [1, 2, 3] } },
      { $case: 'delta', value: { text: 'Hel', index: 0, tokenIds: [10, 11], tokenCount: 2 } },
      { $case: 'delta', value: { text: 'lo', index: 2, tokenIds: [12], tokenCount: 1 } },
      {
        $case: 'finished',
        value: {
          reason: FinishReason.FINISH_REASON_STOP,
          stopReason: '\n',
          usage: { promptTokens: 3, completionTokens: 3, totalTokens: 6 },
          timing: { queueMs: 0, timeToFirstTokenMs: 10, totalMs: 40 },
        },
      },
    ]);
    expect(events.every((e) => e.requestId === 'r1')).toBe(true);
  });

  it('reads chat chunks (prompt ids at the top level, text in delta.content) and strips ids when not asked', () => {
    const t = new StreamTranslator({ ...opts, returnTokenIds: false });
    const events = [
      ...t.onChunk(
        {
          model: 'm',
          prompt_token_ids: [5, 6],
          choices: [{ index: 0, delta: { role: 'assistant', content: '' } }],
        },
        1000,
      ),
      ...t.onChunk(
        {
          model: 'm',
          choices: [{ index: 0, delta: { content: 'Hi' }, token_ids: [42], finish_reason: 'length' }],
        },
        1001,
      ),
      t.finish(1002),
    ];
    expect(events.map((e) => e.event)).toEqual([
      { $case: 'started', value: { model: 'm', promptTokens: 2, promptTokenIds: [] } },
      { $case: 'delta', value: { text: 'Hi', index: 0, tokenIds: [], tokenCount: 1 } },
      {
        $case: 'finished',
        value: {
          reason: FinishReason.FINISH_REASON_LENGTH,
          stopReason: '',
          // no usage chunk: counted from the stream itself
          usage: { promptTokens: 2, completionTokens: 1, totalTokens: 3 },
          timing: { queueMs: 0, timeToFirstTokenMs: 1, totalMs: 2 },
        },
      },
    ]);
  });

  it('uses the known prompt length when the engine echoes no prompt ids, and counts one token per chunk without ids', () => {
    const t = new StreamTranslator({ ...opts, returnTokenIds: true, knownPromptTokens: 7 });
    const [started, delta] = t.onChunk({ model: 'm', choices: [{ index: 0, text: 'x' }] }, 1000);
    expect(started?.event).toEqual({
      $case: 'started',
      value: { model: 'm', promptTokens: 7, promptTokenIds: [] },
    });
    expect(delta?.event).toEqual({
      $case: 'delta',
      value: { text: 'x', index: 0, tokenIds: [], tokenCount: 1 },
    });
    expect(t.tokens).toBe(1);
  });

  it('maps abort to CANCELLED and ignores numeric stop reasons (a stop token id)', () => {
    const t = new StreamTranslator({ ...opts, returnTokenIds: false });
    t.onChunk(
      { model: 'm', choices: [{ index: 0, text: '', finish_reason: 'abort', stop_reason: 128009 }] },
      1000,
    );
    const f = t.finish(1000).event;
    expect(f?.$case === 'finished' && f.value.reason).toBe(FinishReason.FINISH_REASON_CANCELLED);
    expect(f?.$case === 'finished' && f.value.stopReason).toBe('');
  });

  it('throws the engine error of a mid-stream error event with its status', () => {
    const t = new StreamTranslator({ ...opts, returnTokenIds: false });
    let caught: unknown;
    try {
      t.onChunk({ error: { message: 'context overflow', type: 'BadRequestError', code: 400 } }, 1000);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(EngineHttpError);
    expect(caught).toMatchObject({ code: 'invalid_argument', httpStatus: 400, message: 'context overflow' });
  });
});
