/**
 * The official `openai` npm package, unchanged, against the local cluster's OpenAI-compatible HTTP endpoint:
 * chat and completions, streaming and not, usage, an error, and cancellation by aborting a stream (which must
 * reach the engine). The cluster needs an API key, as `corral up`'s does; a wrong one is AuthenticationError. Needs the controller to serve HTTP (--http-listen) and log `http: "host:port"` in its
 * `listening` line.
 */
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../cli/local-api-key.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';
import { until } from '../helpers/until.ts';

const MODEL = 'llama-3.1-8b-instruct';
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 1
    gpusPerReplica: 1
    maxModelLen: 4096
    maxNumSeqs: 64
    defaultMaxTokens: 32
    maxPromptBytes: 65536
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '5']
`;

let openai: OpenAI;
const API_KEY = newApiKey();

/** Requests running on every ready engine, from the engines' own vLLM metrics. */
async function running(): Promise<number> {
  const status = await e2e.cluster.status();
  const engines = status.workers.flatMap((w) => w.engines).filter((e) => e.httpAddress !== '');
  let total = 0;
  for (const e of engines) {
    const text = await (await fetch(`http://${e.httpAddress}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('vllm:num_requests_running'));
    total += Number(line?.split(' ').pop());
  }
  return total;
}

const e2e = useLocalCluster('openai', {
  config: CONFIG,
  workers: h100Nodes(1),
  auth: { apiKey: API_KEY },
});

beforeAll(async () => {
  const { http } = await e2e.cluster.controller.waitListening(1000);
  if (!http) throw new Error('the controller logged no `http` address in its listening line (--http-listen)');
  openai = new OpenAI({ baseURL: `http://${http}/v1`, apiKey: API_KEY, maxRetries: 0 });
});

const messages = [{ role: 'user' as const, content: 'What is the capital of France?' }];

describe('openai SDK against the local cluster', () => {
  it('lists the deployment', async () => {
    const page = await openai.models.list();
    expect(page.data.map((m) => m.id)).toContain(MODEL);
  });

  it('chat, non-streaming: text, finish reason and usage; X-Request-Id echoed', async () => {
    const { data, response } = await openai.chat.completions
      .create(
        {
          model: MODEL,
          messages,
          max_tokens: 10,
          seed: 1,
          ignore_eos: true,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming,
        { headers: { 'X-Request-Id': 'e2e-openai-1' } },
      )
      .withResponse();
    expect(response.headers.get('x-request-id')).toBe('e2e-openai-1');
    expect(data.id).toBe('chatcmpl-e2e-openai-1');
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(data.choices[0]?.finish_reason).toBe('length');
    expect(data.usage?.completion_tokens).toBe(10);
    expect(data.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(data.usage?.total_tokens).toBe((data.usage?.prompt_tokens ?? 0) + 10);
  });

  it('chat, streaming: the deltas add up to the non-streaming answer, then the usage chunk', async () => {
    const params = { model: MODEL, messages, max_tokens: 12, seed: 5, ignore_eos: true };
    const whole = await openai.chat.completions.create(
      params as OpenAI.ChatCompletionCreateParamsNonStreaming,
    );
    const stream = await openai.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '';
    let deltas = 0;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.delta.content) {
        text += c.delta.content;
        deltas += 1;
      }
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(deltas).toBeGreaterThan(1);
    expect(text).toBe(whole.choices[0]?.message.content);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(12);
  });

  it('completions, streaming and not', async () => {
    const params = { model: MODEL, prompt: 'Once upon a time', max_tokens: 8, seed: 3, ignore_eos: true };
    const whole = await openai.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming);
    expect(whole.object).toBe('text_completion');
    expect(whole.usage?.completion_tokens).toBe(8);
    const stream = await openai.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]?.text);
    expect(usage?.total_tokens).toBe(whole.usage?.total_tokens);
  });

  it('a wrong API key is an AuthenticationError, for models and for completions', async () => {
    const stranger = new OpenAI({ baseURL: openai.baseURL, apiKey: newApiKey(), maxRetries: 0 });
    await expect(stranger.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(
      stranger.chat.completions.create({ model: MODEL, messages, max_completion_tokens: 4 }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(
      stranger.chat.completions.create({ model: MODEL, messages, stream: true }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('an unknown model is a NotFoundError; a bad parameter a BadRequestError naming it', async () => {
    const missing = await openai.chat.completions
      .create({ model: 'no-such-model', messages })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect((missing as Error).message).toContain('no-such-model');
    const bad = await openai.chat.completions
      .create({ model: MODEL, messages, n: 3 })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('n');
  });

  it('aborting a stream cancels the request on the engine', async () => {
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Write a very long story.' }],
      max_tokens: 3000,
      ignore_eos: true,
      stream: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let deltas = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) deltas += 1;
      if (deltas === 3) {
        expect(await running()).toBe(1);
        stream.controller.abort();
        break;
      }
    }
    expect(deltas).toBe(3);
    await until('the engine to drop the aborted request', async () =>
      (await running()) === 0 ? true : undefined,
    );
  });
});
