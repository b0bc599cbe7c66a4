import { describe, expect, it } from 'vitest';
import { type Endpoint, parseOpenAiRequest } from '../../../../controller/http/openai-request.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';

const chat = { model: 'm', messages: [{ role: 'user', content: 'Hi' }] };
const completion = { model: 'm', prompt: 'Once' };

function parse(endpoint: Endpoint, body: unknown) {
  return parseOpenAiRequest(endpoint, body, 'r1');
}

describe('parseOpenAiRequest: accepted input', () => {
  it('translates a chat request with every supported parameter', () => {
    const r = parse('chat', {
      ...chat,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
          name: 'u',
        },
        { role: 'assistant', content: 'ok' },
      ],
      max_tokens: 10,
      max_completion_tokens: 20,
      temperature: 0,
      top_p: 1,
      top_k: 40,
      seed: 7,
      stop: ['x', 'y'],
      n: 1,
      stream: true,
      stream_options: { include_usage: true },
      priority: 5,
      user: 'alice',
      min_tokens: 2,
      ignore_eos: true,
      frequency_penalty: 0,
      tools: [],
      response_format: { type: 'text' },
      modalities: ['text'],
    });
    expect(r).toEqual({
      ok: true,
      value: {
        endpoint: 'chat',
        model: 'm',
        stream: true,
        includeUsage: true,
        user: 'alice',
        generate: {
          model: 'm',
          requestId: 'r1',
          input: {
            $case: 'chat',
            value: {
              messages: [
                { role: 'system', content: 'Be brief.' },
                { role: 'user', content: 'ab' },
                { role: 'assistant', content: 'ok' },
              ],
            },
          },
          maxTokens: 20, // max_completion_tokens wins: it is OpenAI's current name
          sampling: {
            temperature: 0,
            topP: 1,
            topK: 40,
            seed: 7,
            stop: ['x', 'y'],
            ignoreEos: true,
            minTokens: 2,
          },
          priority: 5,
          returnTokenIds: false,
          priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
        },
      },
    });
  });

  it.each([
    ['a string', 'Once', { $case: 'prompt', value: 'Once' }],
    ['one string in an array', ['Once'], { $case: 'prompt', value: 'Once' }],
    ['token ids', [1, 2], { $case: 'promptTokenIds', value: { ids: [1, 2] } }],
    ['one token-id array', [[3]], { $case: 'promptTokenIds', value: { ids: [3] } }],
  ])('takes a completion prompt as %s', (_, prompt, input) => {
    const r = parse('completion', { ...completion, prompt });
    expect(r.ok && r.value.generate.input).toEqual(input);
  });

  it('leaves unset limits to the deployment and treats null as absent', () => {
    const r = parse('completion', {
      ...completion,
      max_tokens: null,
      stop: null,
      top_k: -1,
      stream_options: null,
    });
    expect(r.ok && r.value.generate).toEqual({
      model: 'm',
      requestId: 'r1',
      input: { $case: 'prompt', value: 'Once' },
      sampling: { stop: [], ignoreEos: false, minTokens: 0 },
      priority: 0,
      returnTokenIds: false,
      priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    });
    expect(r.ok && r.value.stream).toBe(false);
  });

  it('takes a single stop string as a list of one', () => {
    const r = parse('chat', { ...chat, stop: 'END' });
    expect(r.ok && r.value.generate.sampling?.stop).toEqual(['END']);
  });
});

describe('parseOpenAiRequest: refused input names the field', () => {
  const cases: [string, Endpoint, unknown, string | null, RegExp][] = [
    ['not an object', 'chat', [1], 'body', /expected a JSON object, but got an array/],
    ['missing model', 'chat', { messages: chat.messages }, 'model', /must provide a model/],
    ['empty model', 'chat', { ...chat, model: '' }, 'model', /must provide a model/],
    [
      'model not a string',
      'chat',
      { ...chat, model: 3 },
      'model',
      /'model': expected a string, but got an integer/,
    ],
    ['unknown field', 'chat', { ...chat, foo: 1 }, 'foo', /Unrecognized request argument supplied: foo/],
    ['completion-only field in chat', 'chat', { ...chat, prompt: 'x' }, 'prompt', /Unrecognized/],
    [
      'chat-only field in completions',
      'completion',
      { ...completion, messages: [] },
      'messages',
      /Unrecognized/,
    ],
    ['n > 1', 'chat', { ...chat, n: 2 }, 'n', /n > 1 is not supported/],
    ['n < 1', 'chat', { ...chat, n: 0 }, 'n', /below minimum value/],
    ['n not an integer', 'chat', { ...chat, n: 1.5 }, 'n', /expected an integer, but got a decimal/],
    ['missing messages', 'chat', { model: 'm' }, 'messages', /Missing required parameter: 'messages'/],
    ['messages not an array', 'chat', { ...chat, messages: 'hi' }, 'messages', /expected an array/],
    ['empty messages', 'chat', { ...chat, messages: [] }, 'messages', /empty array/],
    ['message not an object', 'chat', { ...chat, messages: ['hi'] }, 'messages[0]', /expected an object/],
    ['missing role', 'chat', { ...chat, messages: [{ content: 'x' }] }, 'messages[0].role', /Missing/],
    [
      'tool role',
      'chat',
      { ...chat, messages: [{ role: 'tool', content: 'x' }] },
      'messages[0].role',
      /'tool'/,
    ],
    ['missing content', 'chat', { ...chat, messages: [{ role: 'user' }] }, 'messages[0].content', /Missing/],
    [
      'content a number',
      'chat',
      { ...chat, messages: [{ role: 'user', content: 1 }] },
      'messages[0].content',
      /content parts/,
    ],
    [
      'an image part',
      'chat',
      { ...chat, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] },
      'messages[0].content[0].type',
      /only 'text'/,
    ],
    [
      'tool calls in a message',
      'chat',
      { ...chat, messages: [{ role: 'assistant', content: 'x', tool_calls: [] }] },
      'messages[0].tool_calls',
      /Unrecognized/,
    ],
    ['missing prompt', 'completion', { model: 'm' }, 'prompt', /Missing required parameter: 'prompt'/],
    [
      'prompt an object',
      'completion',
      { ...completion, prompt: {} },
      'prompt',
      /expected a string or an array/,
    ],
    ['empty prompt array', 'completion', { ...completion, prompt: [] }, 'prompt', /empty array/],
    ['batched prompts', 'completion', { ...completion, prompt: ['a', 'b'] }, 'prompt', /Batched prompts/],
    ['negative token id', 'completion', { ...completion, prompt: [1, -2] }, 'prompt[1]', /token id/],
    [
      'max_tokens a string',
      'chat',
      { ...chat, max_tokens: '10' },
      'max_tokens',
      /expected an integer, but got a string/,
    ],
    ['max_tokens 0', 'completion', { ...completion, max_tokens: 0 }, 'max_tokens', /below minimum value/],
    [
      'max_completion_tokens 0',
      'chat',
      { ...chat, max_completion_tokens: 0 },
      'max_completion_tokens',
      /minimum/,
    ],
    [
      'max_tokens beyond int32',
      'chat',
      { ...chat, max_tokens: 2 ** 31 },
      'max_tokens',
      /above maximum value/,
    ],
    ['temperature a string', 'chat', { ...chat, temperature: 'hot' }, 'temperature', /expected a number/],
    ['temperature 3', 'chat', { ...chat, temperature: 3 }, 'temperature', /Expected a value <= 2, but got 3/],
    ['top_p 0', 'chat', { ...chat, top_p: 0 }, 'top_p', /Expected a value > 0/],
    ['top_p 1.5', 'chat', { ...chat, top_p: 1.5 }, 'top_p', /above maximum/],
    ['top_k -2', 'chat', { ...chat, top_k: -2 }, 'top_k', /below minimum/],
    ['seed a decimal', 'chat', { ...chat, seed: 1.5 }, 'seed', /expected an integer/],
    ['stop a number', 'chat', { ...chat, stop: 5 }, 'stop', /a string or an array of strings/],
    ['stop with a number', 'chat', { ...chat, stop: ['a', 5] }, 'stop[1]', /expected a string/],
    ['stream a string', 'chat', { ...chat, stream: 'yes' }, 'stream', /expected a boolean/],
    [
      'stream_options without stream',
      'chat',
      { ...chat, stream_options: {} },
      'stream_options',
      /only allowed when 'stream'/,
    ],
    [
      'stream_options a string',
      'chat',
      { ...chat, stream: true, stream_options: 'x' },
      'stream_options',
      /an object/,
    ],
    [
      'unknown stream option',
      'chat',
      { ...chat, stream: true, stream_options: { foo: true } },
      'stream_options.foo',
      /Unrecognized request argument supplied: stream_options.foo/,
    ],
    [
      'include_usage a string',
      'chat',
      { ...chat, stream: true, stream_options: { include_usage: 'y' } },
      'stream_options.include_usage',
      /expected a boolean/,
    ],
    ['priority a decimal', 'chat', { ...chat, priority: 0.5 }, 'priority', /expected an integer/],
    ['user a number', 'chat', { ...chat, user: 1 }, 'user', /expected a string/],
    ['ignore_eos a number', 'chat', { ...chat, ignore_eos: 1 }, 'ignore_eos', /expected a boolean/],
    ['min_tokens negative', 'chat', { ...chat, min_tokens: -1 }, 'min_tokens', /below minimum/],
    ['frequency_penalty', 'chat', { ...chat, frequency_penalty: 0.5 }, 'frequency_penalty', /not supported/],
    ['tools', 'chat', { ...chat, tools: [{ type: 'function' }] }, 'tools', /not supported/],
    ['logprobs', 'chat', { ...chat, logprobs: true }, 'logprobs', /not supported/],
    [
      'json mode',
      'chat',
      { ...chat, response_format: { type: 'json_object' } },
      'response_format',
      /not supported/,
    ],
    ['echo', 'completion', { ...completion, echo: true }, 'echo', /not supported/],
    ['best_of 2', 'completion', { ...completion, best_of: 2 }, 'best_of', /not supported/],
    ['audio output', 'chat', { ...chat, modalities: ['text', 'audio'] }, 'modalities', /not supported/],
    ['metadata a string', 'chat', { ...chat, metadata: 'x' }, 'metadata', /expected an object/],
  ];

  it.each(cases)('%s', (_, endpoint, body, param, message) => {
    const r = parse(endpoint, body);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.status).toBe(400);
    expect(r.error.param).toBe(param);
    expect(r.error.message).toMatch(message);
    if (param !== null && param !== 'body') expect(r.error.message).toContain(param);
  });
});
