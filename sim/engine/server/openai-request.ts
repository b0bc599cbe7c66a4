/**
 * Reads an OpenAI completions / chat completions body the way vLLM's server does: prompt as text, a list of token
 * ids or a one-element list of text; chat messages with string or text-part content through the Llama 3 template;
 * then the context-length check with vLLM's two messages. Failures carry vLLM's status and text.
 */
import { type ChatMessage, encodeChat, encodePrompt } from '../../../common/tokenizer.ts';
import type { GenerationRequest } from '../model/engine-core.ts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'BadRequestError', message);

export type Kind = 'completion' | 'chat';

export interface ParsedRequest {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
  gen: Omit<GenerationRequest, 'id'>;
}

export interface ParseContext {
  servedModelName: string;
  maxModelLen: number;
  priorityEnabled: boolean;
}

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
}

function content(v: unknown, i: number): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v))
    return v
      .map((p: { type?: unknown; text?: unknown }) => {
        if (p?.type !== 'text' || typeof p.text !== 'string')
          throw badRequest(`messages[${i}].content: only text parts are supported`);
        return p.text;
      })
      .join('');
  throw badRequest(`messages[${i}].content: must be a string or a list of text parts`);
}

/** The prompt as token ids, or throws the 400 vLLM would send. */
export function promptIds(kind: Kind, body: Record<string, unknown>): number[] {
  if (kind === 'chat') {
    const msgs = body.messages;
    if (!Array.isArray(msgs) || msgs.length === 0) throw badRequest('messages: must be a non-empty list');
    const chat: ChatMessage[] = msgs.map((m: { role?: unknown; content?: unknown }, i) => {
      if (typeof m?.role !== 'string') throw badRequest(`messages[${i}].role: must be a string`);
      return { role: m.role, content: content(m.content, i) };
    });
    const addGen = body.add_generation_prompt !== false && body.continue_final_message !== true;
    return encodeChat(chat, addGen);
  }
  const p = body.prompt;
  if (typeof p === 'string') {
    if (p === '') throw badRequest('Prompt cannot be empty.');
    return encodePrompt(p);
  }
  if (isIdList(p)) return [...p];
  if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string' && p[0] !== '')
    return encodePrompt(p[0]);
  if (Array.isArray(p) && p.length === 1 && isIdList(p[0])) return [...p[0]];
  throw badRequest('prompt: must be a non-empty string or a list of token ids (one prompt per request)');
}

function intField(body: Record<string, unknown>, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`${name}: must be an integer`);
  return v;
}

export function parseRequest(kind: Kind, body: unknown, ctx: ParseContext): ParsedRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const model = typeof b.model === 'string' ? b.model : ctx.servedModelName;
  if (model !== ctx.servedModelName)
    throw new HttpError(404, 'NotFoundError', `The model \`${model}\` does not exist.`);
  const n = intField(b, 'n') ?? 1;
  if (n !== 1) throw badRequest(`n: only n=1 is supported by this engine, got ${n}`);
  const maxTokensRaw =
    intField(b, kind === 'chat' ? 'max_completion_tokens' : 'max_tokens') ?? intField(b, 'max_tokens');
  if (maxTokensRaw !== undefined && maxTokensRaw < 1)
    throw badRequest(`max_tokens must be at least 1, got ${maxTokensRaw}.`);
  const minTokens = intField(b, 'min_tokens') ?? 0;
  if (minTokens < 0) throw badRequest(`min_tokens must be greater than or equal to 0, got ${minTokens}.`);
  const priority = intField(b, 'priority') ?? 0;
  if (priority !== 0 && !ctx.priorityEnabled)
    throw badRequest(
      "Got priority 0 != 0, but scheduling policy is not 'priority'.".replace('0 != 0', `${priority} != 0`),
    );
  const seed = intField(b, 'seed');
  let stop: string[] = [];
  if (typeof b.stop === 'string') stop = [b.stop];
  else if (Array.isArray(b.stop) && b.stop.every((s) => typeof s === 'string')) stop = b.stop as string[];
  else if (b.stop !== undefined && b.stop !== null)
    throw badRequest('stop: must be a string or a list of strings');
  const opts = (b.stream_options ?? {}) as { include_usage?: unknown };

  const ids = promptIds(kind, b);
  const m = ctx.maxModelLen;
  if (ids.length >= m && maxTokensRaw === undefined)
    throw badRequest(
      `This model's maximum context length is ${m} tokens. However, your request has ${ids.length} input tokens. Please reduce the length of the input messages.`,
    );
  if (ids.length > m)
    throw badRequest(
      `This model's maximum context length is ${m} tokens. However, your request has ${ids.length} input tokens. Please reduce the length of the input messages.`,
    );
  if (maxTokensRaw !== undefined && ids.length + maxTokensRaw > m)
    throw badRequest(
      `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokensRaw}. This model's maximum context length is ${m} tokens and your request has ${ids.length} input tokens (${maxTokensRaw} > ${m} - ${ids.length}).`,
    );
  if (minTokens > (maxTokensRaw ?? m - ids.length))
    throw badRequest(
      `min_tokens must be less than or equal to max_tokens=${maxTokensRaw}, got ${minTokens}.`,
    );
  return {
    model,
    stream: b.stream === true,
    includeUsage: opts.include_usage === true,
    returnTokenIds: b.return_token_ids === true,
    gen: {
      promptIds: ids,
      maxTokens: maxTokensRaw ?? m - ids.length,
      minTokens,
      ignoreEos: b.ignore_eos === true,
      stop,
      seed,
      priority,
    },
  };
}
