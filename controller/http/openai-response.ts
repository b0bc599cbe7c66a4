/**
 * Pure translation of corral's GenerateEvents into OpenAI's response objects, in the shapes vLLM's server
 * sends: streamed `chat.completion.chunk` (a role chunk, content deltas, a last chunk with `finish_reason`,
 * then with `include_usage` a chunk with `choices: []` and the usage) or `text_completion` chunks, and the
 * non-streaming `chat.completion` / `text_completion` bodies. The SSE framing itself is the server's.
 */
import { FinishReason, type GenerateEvent, type Usage } from '../../proto/gen/corral/v1/inference.ts';
import type { Endpoint } from './openai-request.ts';

export interface ResponseMeta {
  endpoint: Endpoint;
  requestId: string;
  model: string;
  /** Unix seconds, as OpenAI's `created`. */
  created: number;
  includeUsage: boolean;
}

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** vLLM's names; `abort` is what vLLM reports for a request cancelled while it ran. */
export function finishReason(r: FinishReason): string {
  if (r === FinishReason.FINISH_REASON_LENGTH) return 'length';
  if (r === FinishReason.FINISH_REASON_CANCELLED) return 'abort';
  return 'stop';
}

function usageOf(u: Usage | undefined): OpenAiUsage {
  const prompt = u?.promptTokens ?? 0;
  const completion = u?.completionTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: u?.totalTokens || prompt + completion,
  };
}

/**
 * Follows one request's events. `chunks(event)` gives the stream chunks an event becomes; after the last
 * event, `body()` gives the non-streaming response. `finished` tells whether the Finished event came.
 */
export class OpenAiResponse {
  private text = '';
  private model: string;
  private done: { reason: string; stopReason: string | null; usage: OpenAiUsage } | undefined;

  constructor(private readonly meta: ResponseMeta) {
    this.model = meta.model;
  }

  get id(): string {
    return `${this.meta.endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${this.meta.requestId}`;
  }

  get finished(): boolean {
    return this.done !== undefined;
  }

  chunks(event: GenerateEvent): object[] {
    const e = event.event;
    if (e === undefined) return [];
    const chat = this.meta.endpoint === 'chat';
    switch (e.$case) {
      case 'started':
        if (e.value.model !== '') this.model = e.value.model;
        // OpenAI's first chat chunk announces the role; completions have no equivalent.
        return chat ? [this.chunk({ role: 'assistant', content: '' }, null)] : [];
      case 'delta':
        this.text += e.value.text;
        if (e.value.text === '') return [];
        return [chat ? this.chunk({ content: e.value.text }, null) : this.chunk(e.value.text, null)];
      case 'finished': {
        const stopReason = e.value.stopReason === '' ? null : e.value.stopReason;
        this.done = { reason: finishReason(e.value.reason), stopReason, usage: usageOf(e.value.usage) };
        const last = chat
          ? this.chunk({}, this.done.reason, stopReason)
          : this.chunk('', this.done.reason, stopReason);
        if (!this.meta.includeUsage) return [last];
        return [last, { ...this.envelope(), choices: [], usage: this.done.usage }];
      }
    }
  }

  /** The non-streaming response; only once `finished`. */
  body(): object {
    if (!this.done) throw new Error('response body requested before the Finished event');
    const { reason, stopReason, usage } = this.done;
    const choice =
      this.meta.endpoint === 'chat'
        ? { index: 0, message: { role: 'assistant', content: this.text }, logprobs: null }
        : { index: 0, text: this.text, logprobs: null };
    return {
      id: this.id,
      object: this.meta.endpoint === 'chat' ? 'chat.completion' : 'text_completion',
      created: this.meta.created,
      model: this.model,
      choices: [{ ...choice, finish_reason: reason, stop_reason: stopReason }],
      usage,
    };
  }

  private envelope() {
    return {
      id: this.id,
      object: this.meta.endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: this.meta.created,
      model: this.model,
    };
  }

  private chunk(delta: object | string, reason: string | null, stopReason?: string | null): object {
    const content = typeof delta === 'string' ? { text: delta } : { delta };
    const stop = stopReason === undefined ? {} : { stop_reason: stopReason };
    return {
      ...this.envelope(),
      choices: [{ index: 0, ...content, logprobs: null, finish_reason: reason, ...stop }],
    };
  }
}

/** `GET /v1/models` in OpenAI's list shape, with vLLM's `max_model_len`. */
export function modelList(
  models: readonly { id: string; maxModelLen: number }[],
  created: number,
): { object: 'list'; data: object[] } {
  return {
    object: 'list',
    data: models.map((m) => ({
      id: m.id,
      object: 'model',
      created,
      owned_by: 'corral',
      root: m.id,
      parent: null,
      max_model_len: m.maxModelLen,
    })),
  };
}
