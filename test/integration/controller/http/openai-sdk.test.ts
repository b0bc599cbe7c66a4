/**
 * The official `openai` npm package, unchanged, against the HTTP server with a scripted RequestPath: what
 * existing OpenAI code sees when pointed at corral.
 */
import OpenAI from 'openai';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CorralError } from '../../../../common/errors.ts';
import { openAdmission } from '../../../../controller/admission/admission.ts';
import { answer, FakeRequestPath, usePathServer } from './fake-request-path.ts';

const path = new FakeRequestPath();
const base = usePathServer(path, { admission: openAdmission() });
let openai: OpenAI;

beforeAll(() => {
  openai = new OpenAI({ baseURL: `${base()}/v1`, apiKey: 'sk-test', maxRetries: 0 });
});

beforeEach(() => {
  path.calls.length = 0;
  path.script = (req) => answer(req, ['Paris', ' is', ' the capital.'], 9);
});

const messages = [{ role: 'user' as const, content: 'Capital of France?' }];

describe('openai SDK against the HTTP front door', () => {
  it('chat, non-streaming, with usage and the API key passed to the path', async () => {
    const r = await openai.chat.completions.create({ model: 'm', messages, max_completion_tokens: 16 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]?.message).toMatchObject({ role: 'assistant', content: 'Paris is the capital.' });
    expect(r.choices[0]?.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
    expect(path.calls[0]?.ctx.apiKey).toBe('sk-test');
    expect(path.calls[0]?.req.maxTokens).toBe(16);
  });

  it('chat, streaming, with the usage chunk', async () => {
    const stream = await openai.chat.completions.create({
      model: 'm',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      role ??= c?.delta.role;
      text += c?.delta.content ?? '';
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect({ role, text, finish }).toEqual({
      role: 'assistant',
      text: 'Paris is the capital.',
      finish: 'stop',
    });
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
  });

  it('completions, non-streaming and streaming', async () => {
    const r = await openai.completions.create({ model: 'm', prompt: 'The capital of France', max_tokens: 8 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]?.text).toBe('Paris is the capital.');
    expect(r.usage?.completion_tokens).toBe(3);

    const stream = await openai.completions.create({
      model: 'm',
      prompt: 'The capital of France',
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Paris is the capital.');
    expect(usage?.total_tokens).toBe(12);
  });

  it('lists models', async () => {
    const page = await openai.models.list();
    expect(page.data.map((m) => m.id)).toEqual(['m']);
  });

  it('surfaces a refusal as the SDK error class of its status, with the message and field', async () => {
    path.script = () => [
      { t: 'throw', error: new CorralError('not_found', 'The model `nope` does not exist.') },
    ];
    const e = await openai.chat.completions.create({ model: 'nope', messages }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as InstanceType<typeof OpenAI.NotFoundError>).message).toContain(
      'The model `nope` does not exist.',
    );

    const bad = await openai.chat.completions.create({ model: 'm', messages, n: 2 }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('n');
  });

  it('surfaces a mid-stream error as an APIError while iterating', async () => {
    path.script = (req) => [
      ...answer(req, ['Par'], 9).slice(0, 2),
      { t: 'throw', error: new CorralError('unavailable', 'worker lost') },
    ];
    const stream = await openai.chat.completions.create({ model: 'm', messages, stream: true });
    const seen: string[] = [];
    const e = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((x: unknown) => x);
    expect(seen.join('')).toBe('Par');
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect((e as Error).message).toContain('worker lost');
  });

  it('aborting a stream cancels the request on the server', async () => {
    path.script = (req) => [...answer(req, ['Par'], 9).slice(0, 2), { t: 'hang' }];
    const stream = await openai.chat.completions.create({ model: 'm', messages, stream: true });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) {
        stream.controller.abort();
        break;
      }
    }
    await path.calls[0]?.aborted;
    expect(path.calls[0]?.ctx.signal.aborted).toBe(true);
  });
});
