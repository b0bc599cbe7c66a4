import { describe, expect, it } from 'vitest';
import { BatchLineParser, lineRequestId, splitLines } from '../../../../controller/batch/batch-line.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';

const MODEL = 'llama-3.1-8b-instruct';
const { deployments } = compileControllerConfig({
  deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxPromptBytes: 64 }],
});

function parser(url: '/v1/chat/completions' | '/v1/completions' = '/v1/chat/completions') {
  return new BatchLineParser({ batchId: 'batch_1', url, deployments });
}

const chat = (customId: string, body: Record<string, unknown> = {}, over: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], ...body },
    ...over,
  });

/** The error of a line parsed on its own, as `line N: code: message`. */
function errorOf(text: string, p = parser()): string {
  const r = p.parse(text, 7);
  if (r.ok) throw new Error('expected the line to be refused');
  expect(r.error.line).toBe(7);
  return `${r.error.code}: ${r.error.message}`;
}

describe('splitLines', () => {
  it('drops the carriage return of CRLF and the empty line after the last newline, keeps inner blanks', () => {
    expect(splitLines('a\r\nb\n\nc\n')).toEqual(['a', 'b', '', 'c']);
    expect(splitLines('a')).toEqual(['a']);
  });
});

describe('BatchLineParser', () => {
  it('turns a good line into the request the HTTP front door would make, at class batch', () => {
    const r = parser().parse(chat('q-1', { max_tokens: 5, temperature: 0.5 }), 3);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value).toMatchObject({ line: 3, customId: 'q-1', endpoint: 'chat' });
    expect(r.value.deployment.name).toBe(MODEL);
    expect(r.value.generate).toMatchObject({
      model: MODEL,
      requestId: lineRequestId('batch_1', 'q-1'),
      maxTokens: 5,
      priorityClass: PriorityClass.PRIORITY_CLASS_BATCH,
      input: { $case: 'chat', value: { messages: [{ role: 'user', content: 'Hi' }] } },
    });
    expect(r.value.generate.sampling?.temperature).toBe(0.5);
  });

  it.each([
    ['{"custom_id": "x"', /^invalid_json: line 7 is not valid JSON/],
    ['[1, 2]', /^invalid_request: line 7 must be a JSON object$/],
    [chat('', {}), /^invalid_request: line 7: custom_id must be a non-empty string$/],
    [chat('a'.repeat(257)), /^invalid_request: line 7: custom_id is longer than 256 characters$/],
    [chat('x', {}, { extra: 1 }), /^invalid_request: line 7: unknown field 'extra'/],
    [chat('x', {}, { method: 'GET' }), /^invalid_request: line 7: method must be POST, got "GET"$/],
    [chat('x', {}, { url: '/v1/embeddings' }), /^invalid_url: line 7: url "\/v1\/embeddings" is not served/],
    [chat('x', {}, { url: '/v1/completions' }), /^invalid_url: .*differs from the batch's endpoint/],
    [
      chat('x', { temperature: 'hot' }),
      /^invalid_body: line 7 \(body\.temperature\): Invalid type for 'temperature'/,
    ],
    [
      chat('x', { stream: true }),
      /^invalid_body: line 7 \(body\.stream\): streaming is not served in a batch$/,
    ],
    [chat('x', { model: 'gpt-4o' }), /^model_not_found: line 7: model `gpt-4o` is not served here/],
    [
      chat('x', { messages: [{ role: 'user', content: 'x'.repeat(65) }] }),
      /^invalid_body: line 7: prompt is 65 bytes/,
    ],
  ])('refuses %s', (text, expected) => {
    expect(errorOf(text)).toMatch(expected);
  });

  it('refuses the second line that uses a custom_id, naming the first, and keeps the id in the error', () => {
    const p = parser();
    expect(p.parse(chat('dup'), 1).ok).toBe(true);
    const r = p.parse(chat('dup'), 4);
    expect(r).toEqual({
      ok: false,
      error: {
        line: 4,
        customId: 'dup',
        code: 'duplicate_custom_id',
        message: "line 4: custom_id 'dup' is already used on line 1; each line needs its own",
      },
    });
  });

  it('parses completions lines for a /v1/completions batch', () => {
    const line = JSON.stringify({
      custom_id: 'c',
      method: 'POST',
      url: '/v1/completions',
      body: { model: MODEL, prompt: 'Once upon a time' },
    });
    const r = parser('/v1/completions').parse(line, 1);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.endpoint).toBe('completion');
    expect(r.value.generate.input).toEqual({ $case: 'prompt', value: 'Once upon a time' });
  });
});
