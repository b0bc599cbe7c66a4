import { describe, expect, it } from 'vitest';
import type { GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { toEngineRequest } from '../../../../worker/engine/openai-request.ts';

const base: GenerateRequest = {
  model: 'llama',
  requestId: 'r1',
  input: { $case: 'prompt', value: 'Hello' },
  maxTokens: undefined,
  sampling: undefined,
  priority: 0,
  returnTokenIds: false,
  priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
};

const STREAMING = { stream: true, stream_options: { include_usage: true }, return_token_ids: true };

describe('toEngineRequest', () => {
  it('sends a prompt to /v1/completions, always streamed with usage and token ids, under the served name', () => {
    expect(toEngineRequest(base, 'served-name')).toEqual({
      ok: true,
      value: { path: '/v1/completions', body: { model: 'served-name', prompt: 'Hello', ...STREAMING } },
    });
  });

  it('sends chat messages to /v1/chat/completions', () => {
    const r = toEngineRequest(
      {
        ...base,
        input: {
          $case: 'chat',
          value: {
            messages: [
              { role: 'system', content: 'Be brief.' },
              { role: 'user', content: 'Hi' },
            ],
          },
        },
      },
      'm',
    );
    expect(r.ok && r.value.path).toBe('/v1/chat/completions');
    expect(r.ok && r.value.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
  });

  it('sends prompt token ids to /v1/completions with prompt as the id list', () => {
    const r = toEngineRequest(
      { ...base, input: { $case: 'promptTokenIds', value: { ids: [128000, 9906] } } },
      'm',
    );
    expect(r.ok && r.value).toEqual({
      path: '/v1/completions',
      body: { model: 'm', prompt: [128000, 9906], ...STREAMING },
    });
  });

  it('maps sampling parameters, max_tokens and a non-zero priority', () => {
    const r = toEngineRequest(
      {
        ...base,
        maxTokens: 64,
        priority: -1,
        sampling: {
          temperature: 0.7,
          topP: 0.9,
          topK: 40,
          seed: 7,
          stop: ['\n\n'],
          ignoreEos: true,
          minTokens: 2,
        },
      },
      'm',
    );
    expect(r.ok && r.value.body).toEqual({
      model: 'm',
      prompt: 'Hello',
      max_tokens: 64,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 40,
      seed: 7,
      stop: ['\n\n'],
      ignore_eos: true,
      min_tokens: 2,
      priority: -1,
      ...STREAMING,
    });
  });

  it('leaves unset sampling fields out (engine defaults apply)', () => {
    const r = toEngineRequest({ ...base, sampling: { stop: [], ignoreEos: false, minTokens: 0 } }, 'm');
    expect(r.ok && Object.keys(r.value.body).sort()).toEqual(
      ['model', 'prompt', 'return_token_ids', 'stream', 'stream_options'].sort(),
    );
  });

  it('collects every problem with its path', () => {
    expect(toEngineRequest({ ...base, input: { $case: 'prompt', value: '' }, maxTokens: 0 }, 'm')).toEqual({
      ok: false,
      error: [
        { path: 'request.prompt', message: 'must not be empty' },
        { path: 'request.max_tokens', message: 'must be > 0, got 0' },
      ],
    });
    expect(toEngineRequest({ ...base, input: undefined }, 'm')).toEqual({
      ok: false,
      error: [{ path: 'request.input', message: 'one of prompt, chat or prompt_token_ids is required' }],
    });
    const emptyChat = toEngineRequest({ ...base, input: { $case: 'chat', value: { messages: [] } } }, 'm');
    expect(!emptyChat.ok && emptyChat.error[0]?.path).toBe('request.chat.messages');
  });
});
