/**
 * Pure translation of an OpenAI request body (`/v1/chat/completions`, `/v1/completions`) into a corral
 * GenerateRequest. Only the shape is checked here (types, ranges, fields OpenAI would refuse, features corral
 * does not serve); limits that depend on the deployment (context length, prompt size, known models) are the
 * request path's, checked once for both front doors.
 */
import { err, ok, type Result } from '../../common/errors.ts';
import type { ChatMessage, GenerateRequest, SamplingParams } from '../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../proto/gen/corral/v1/inference.ts';
import { HttpError } from './http-errors.ts';
import {
  isObject,
  type JsonObject,
  onlyNeutral,
  optBoolean,
  optInteger,
  optNumber,
  optString,
  rejectUnknown,
  typeError,
} from './json-fields.ts';

export type Endpoint = 'chat' | 'completion';

export interface ParsedRequest {
  endpoint: Endpoint;
  model: string;
  generate: GenerateRequest;
  stream: boolean;
  /** `stream_options.include_usage`: one more chunk, with `choices: []` and the usage, before `[DONE]`. */
  includeUsage: boolean;
  /** OpenAI's end-user id; not forwarded, only logged. */
  user?: string;
}

const INT32_MAX = 2 ** 31 - 1;

/** Accepted and used, or accepted for compatibility and ignored (user, metadata, prompt_cache_key). */
const COMMON_FIELDS = [
  'model',
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'n',
  'stream',
  'stream_options',
  'stop',
  'seed',
  'user',
  'priority',
  'min_tokens',
  'ignore_eos',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'logprobs',
];
const CHAT_FIELDS = new Set([
  ...COMMON_FIELDS,
  'messages',
  'max_completion_tokens',
  'top_logprobs',
  'response_format',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'functions',
  'function_call',
  'metadata',
  'store',
  'service_tier',
  'modalities',
  'safety_identifier',
  'prompt_cache_key',
]);
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'echo', 'best_of', 'suffix']);
const STREAM_OPTIONS = new Set(['include_usage', 'continuous_usage_stats']);
const MESSAGE_FIELDS = new Set(['role', 'content', 'name']);
/** OpenAI's `developer` role is its newer name for `system`; Llama's chat template knows only `system`. */
const ROLES: Record<string, string> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
};

export function parseOpenAiRequest(
  endpoint: Endpoint,
  body: unknown,
  requestId: string,
): Result<ParsedRequest, HttpError> {
  try {
    return ok(parse(endpoint, body, requestId));
  } catch (e) {
    if (e instanceof HttpError) return err(e);
    throw e;
  }
}

function parse(endpoint: Endpoint, body: unknown, requestId: string): ParsedRequest {
  if (!isObject(body)) throw typeError('body', 'a JSON object', body);
  rejectUnknown(body, endpoint === 'chat' ? CHAT_FIELDS : COMPLETION_FIELDS);

  const model = optString(body, 'model');
  if (model === undefined || model === '')
    throw new HttpError(400, 'you must provide a model parameter', 'model');

  const n = optInteger(body, 'n', { min: 1 });
  if (n !== undefined && n > 1) throw new HttpError(400, `n > 1 is not supported (got n=${n}).`, 'n');
  for (const [field, neutral] of NEUTRAL_ONLY[endpoint]) onlyNeutral(body, field, neutral);
  if (endpoint === 'chat') {
    checkResponseFormat(body);
    checkModalities(body);
  }

  const stream = optBoolean(body, 'stream') ?? false;
  const includeUsage = streamOptions(body, stream);

  const maxTokens =
    endpoint === 'chat'
      ? (optInteger(body, 'max_completion_tokens', { min: 1, max: INT32_MAX }) ??
        optInteger(body, 'max_tokens', { min: 1, max: INT32_MAX }))
      : optInteger(body, 'max_tokens', { min: 1, max: INT32_MAX });

  const input: GenerateRequest['input'] =
    endpoint === 'chat' ? { $case: 'chat', value: { messages: messages(body) } } : prompt(body);

  const user = optString(body, 'user');
  optString(body, 'safety_identifier');
  optString(body, 'prompt_cache_key');
  if (body.metadata !== undefined && body.metadata !== null && !isObject(body.metadata)) {
    throw typeError('metadata', 'an object', body.metadata);
  }

  return {
    endpoint,
    model,
    stream,
    includeUsage,
    ...(user === undefined ? {} : { user }),
    generate: {
      model,
      requestId,
      input,
      ...(maxTokens === undefined ? {} : { maxTokens }),
      sampling: sampling(body),
      priority: optInteger(body, 'priority', { min: -INT32_MAX, max: INT32_MAX }) ?? 0,
      returnTokenIds: false,
      priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    },
  };
}

const COMMON_NEUTRAL: [string, unknown[]][] = [
  ['frequency_penalty', [0]],
  ['presence_penalty', [0]],
  ['logit_bias', []],
];
const NEUTRAL_ONLY: Record<Endpoint, [string, unknown[]][]> = {
  chat: [
    ...COMMON_NEUTRAL,
    ['logprobs', [false]],
    ['top_logprobs', [0]],
    ['tools', []],
    ['tool_choice', ['none', 'auto']],
    ['parallel_tool_calls', [true, false]],
    ['functions', []],
    ['function_call', ['none', 'auto']],
    ['store', [false]],
    ['service_tier', ['auto', 'default']],
  ],
  completion: [...COMMON_NEUTRAL, ['logprobs', [0]], ['echo', [false]], ['best_of', [1]], ['suffix', ['']]],
};

function checkResponseFormat(body: JsonObject): void {
  const v = body.response_format;
  if (v === undefined || v === null) return;
  if (!isObject(v)) throw typeError('response_format', 'an object', v);
  if (v.type !== 'text')
    throw new HttpError(400, "'response_format' other than text is not supported.", 'response_format');
}

/** Text output is what corral serves; `["text"]` is OpenAI's default and accepted as such. */
function checkModalities(body: JsonObject): void {
  const v = body.modalities;
  if (v === undefined || v === null) return;
  if (!Array.isArray(v)) throw typeError('modalities', 'an array', v);
  if (v.some((m) => m !== 'text'))
    throw new HttpError(400, "'modalities' other than text are not supported.", 'modalities');
}

function streamOptions(body: JsonObject, stream: boolean): boolean {
  const v = body.stream_options;
  if (v === undefined || v === null) return false;
  if (!stream) {
    throw new HttpError(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
    );
  }
  if (!isObject(v)) throw typeError('stream_options', 'an object', v);
  rejectUnknown(v, STREAM_OPTIONS, 'stream_options.');
  onlyNeutral(v, 'continuous_usage_stats', [false]);
  return optBoolean(v, 'include_usage', 'stream_options.include_usage') ?? false;
}

function messages(body: JsonObject): ChatMessage[] {
  const v = body.messages;
  if (v === undefined || v === null)
    throw new HttpError(400, "Missing required parameter: 'messages'.", 'messages');
  if (!Array.isArray(v)) throw typeError('messages', 'an array', v);
  if (v.length === 0) throw new HttpError(400, "Invalid 'messages': empty array.", 'messages');
  return v.map((m: unknown, i) => {
    const path = `messages[${i}]`;
    if (!isObject(m)) throw typeError(path, 'an object', m);
    rejectUnknown(m, MESSAGE_FIELDS, `${path}.`);
    const role = optString(m, 'role', `${path}.role`);
    if (role === undefined)
      throw new HttpError(400, `Missing required parameter: '${path}.role'.`, `${path}.role`);
    const mapped = ROLES[role];
    if (mapped === undefined) {
      throw new HttpError(
        400,
        `Invalid value for '${path}.role': '${role}' is not supported; use system, developer, user or assistant.`,
        `${path}.role`,
      );
    }
    optString(m, 'name', `${path}.name`);
    return { role: mapped, content: content(m.content, `${path}.content`) };
  });
}

/** A string, or OpenAI's array of content parts of which corral serves the text ones. */
function content(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) throw new HttpError(400, `Missing required parameter: '${path}'.`, path);
  if (!Array.isArray(v)) throw typeError(path, 'a string or an array of content parts', v);
  return v
    .map((part: unknown, j) => {
      const p = `${path}[${j}]`;
      if (!isObject(part)) throw typeError(p, 'an object', part);
      if (part.type !== 'text') {
        throw new HttpError(
          400,
          `Invalid '${p}.type': only 'text' content parts are supported.`,
          `${p}.type`,
        );
      }
      rejectUnknown(part, new Set(['type', 'text']), `${p}.`);
      const text = optString(part, 'text', `${p}.text`);
      if (text === undefined)
        throw new HttpError(400, `Missing required parameter: '${p}.text'.`, `${p}.text`);
      return text;
    })
    .join('');
}

/** A string, a one-element array of strings, token ids, or a one-element array of token-id arrays. */
function prompt(body: JsonObject): GenerateRequest['input'] {
  const v = body.prompt;
  if (v === undefined || v === null)
    throw new HttpError(400, "Missing required parameter: 'prompt'.", 'prompt');
  if (typeof v === 'string') return { $case: 'prompt', value: v };
  if (!Array.isArray(v)) throw typeError('prompt', 'a string or an array', v);
  if (v.length === 0) throw new HttpError(400, "Invalid 'prompt': empty array.", 'prompt');
  if (v.every((x) => typeof x === 'number'))
    return { $case: 'promptTokenIds', value: { ids: tokenIds(v, 'prompt') } };
  if (v.length > 1) throw new HttpError(400, 'Batched prompts (more than one) are not supported.', 'prompt');
  const only: unknown = v[0];
  if (typeof only === 'string') return { $case: 'prompt', value: only };
  if (Array.isArray(only)) return { $case: 'promptTokenIds', value: { ids: tokenIds(only, 'prompt[0]') } };
  throw typeError('prompt[0]', 'a string or an array of token ids', only);
}

function tokenIds(v: unknown[], path: string): number[] {
  if (v.length === 0) throw new HttpError(400, `Invalid '${path}': empty array.`, path);
  return v.map((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) {
      throw typeError(`${path}[${i}]`, 'a non-negative integer token id', x);
    }
    return x;
  });
}

function sampling(body: JsonObject): SamplingParams {
  const temperature = optNumber(body, 'temperature', { min: 0, max: 2 });
  const topP = optNumber(body, 'top_p', { min: 0, max: 1, exclusiveMin: true });
  // vLLM's convention: -1 (and 0) mean "no top-k".
  const topK = optInteger(body, 'top_k', { min: -1, max: INT32_MAX });
  const seed = optInteger(body, 'seed');
  return {
    ...(temperature === undefined ? {} : { temperature }),
    ...(topP === undefined ? {} : { topP }),
    ...(topK === undefined || topK <= 0 ? {} : { topK }),
    ...(seed === undefined ? {} : { seed }),
    stop: stop(body),
    ignoreEos: optBoolean(body, 'ignore_eos') ?? false,
    minTokens: optInteger(body, 'min_tokens', { min: 0, max: INT32_MAX }) ?? 0,
  };
}

function stop(body: JsonObject): string[] {
  const v = body.stop;
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw typeError('stop', 'a string or an array of strings', v);
  return v.map((s: unknown, i) => {
    if (typeof s !== 'string') throw typeError(`stop[${i}]`, 'a string', s);
    return s;
  });
}
