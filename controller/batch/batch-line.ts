/**
 * Pure parsing of a batch input file, OpenAI's Batch API format: one JSON object a line,
 *   {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
 * Each body goes through the HTTP front door's parser (controller/http/openai-request.ts) and the gateway's
 * checks that need no tokens (request-validation.ts), so a batch line is refused for exactly what the same
 * request over HTTP would be. A bad line becomes a LineError (its 1-based line number, a code and the message);
 * the other lines go on. The context-length check needs token
 * counts and runs when the line is fed to the queue (enqueue.ts), with the same wording.
 *
 * Blank lines are skipped (a trailing newline is not a request) but keep their place in the numbering.
 */
import { CorralError } from '../../common/errors.ts';
import { type GenerateRequest, PriorityClass } from '../../proto/gen/corral/v1/inference.ts';
import type { Deployment } from '../config/controller-config.ts';
import { type PromptInput, resolveDeployment, validateRequest } from '../gateway/request-validation.ts';
import { isObject } from '../http/json-fields.ts';
import { type Endpoint, parseOpenAiRequest } from '../http/openai-request.ts';

/** The URLs a batch line (and a batch) may name, and the front door endpoint each is. */
export const BATCH_URLS: Readonly<Record<string, Endpoint>> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
};
export type BatchUrl = '/v1/chat/completions' | '/v1/completions';

export function isBatchUrl(v: unknown): v is BatchUrl {
  return typeof v === 'string' && v in BATCH_URLS;
}

/** custom_id becomes part of a request id (log lines, Redis keys): bounded like X-Request-Id. */
export const MAX_CUSTOM_ID_LENGTH = 256;
const LINE_FIELDS = new Set(['custom_id', 'method', 'url', 'body']);

export interface BatchLine {
  /** 1-based line number in the input file. */
  line: number;
  customId: string;
  endpoint: Endpoint;
  deployment: Deployment;
  prompt: PromptInput;
  /** request_id is lineRequestId(batch, custom_id); priority class batch. */
  generate: GenerateRequest;
}

export interface LineError {
  line: number;
  /** null when the line has none (bad JSON, a missing or duplicate custom_id keeps the one it gave). */
  customId: string | null;
  code: string;
  message: string;
}

export type ParsedLine = { ok: true; value: BatchLine } | { ok: false; error: LineError };

/**
 * The queue's request id of a line: the same batch and custom_id always give the same id, so a driver that
 * feeds a line again after a controller crash attaches to the request instead of running it twice.
 */
export function lineRequestId(batchId: string, customId: string): string {
  return `${batchId}:${customId}`;
}

/** The lines of a JSONL text (a `\r` before each newline dropped; a final newline adds no line). */
export function splitLines(text: string): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function isBlank(line: string): boolean {
  return line.trim() === '';
}

export interface LineContext {
  batchId: string;
  /** The batch's endpoint: every line's url must name it. */
  url: BatchUrl;
  deployments: readonly Deployment[];
}

/**
 * Parses the lines of one file in order, remembering custom_ids so the second use of one is refused (results
 * are matched to requests by custom_id). Holds only the ids, not the lines.
 */
export class BatchLineParser {
  private readonly seen = new Map<string, number>();

  constructor(private readonly ctx: LineContext) {}

  parse(text: string, line: number): ParsedLine {
    const fail = (code: string, message: string, customId: string | null = null) =>
      ({ ok: false, error: { line, customId, code, message } }) as const;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      return fail('invalid_json', `line ${line} is not valid JSON (${(e as Error).message})`);
    }
    if (!isObject(raw)) return fail('invalid_request', `line ${line} must be a JSON object`);
    const customId = raw.custom_id;
    if (typeof customId !== 'string' || customId === '')
      return fail('invalid_request', `line ${line}: custom_id must be a non-empty string`);
    if (customId.length > MAX_CUSTOM_ID_LENGTH)
      return fail(
        'invalid_request',
        `line ${line}: custom_id is longer than ${MAX_CUSTOM_ID_LENGTH} characters`,
        customId,
      );
    const unknown = Object.keys(raw).filter((k) => !LINE_FIELDS.has(k));
    if (unknown.length > 0)
      return fail(
        'invalid_request',
        `line ${line}: unknown field ${unknown.map((k) => `'${k}'`).join(', ')}; a line has custom_id, method, url and body`,
        customId,
      );
    const first = this.seen.get(customId);
    if (first !== undefined)
      return fail(
        'duplicate_custom_id',
        `line ${line}: custom_id '${customId}' is already used on line ${first}; each line needs its own`,
        customId,
      );
    this.seen.set(customId, line);
    if (raw.method !== 'POST')
      return fail(
        'invalid_request',
        `line ${line}: method must be POST, got ${JSON.stringify(raw.method)}`,
        customId,
      );
    if (!isBatchUrl(raw.url))
      return fail(
        'invalid_url',
        `line ${line}: url ${JSON.stringify(raw.url)} is not served in a batch; use ${Object.keys(BATCH_URLS).join(' or ')}`,
        customId,
      );
    if (raw.url !== this.ctx.url)
      return fail(
        'invalid_url',
        `line ${line}: url ${raw.url} differs from the batch's endpoint ${this.ctx.url}`,
        customId,
      );
    const endpoint = BATCH_URLS[raw.url] as Endpoint;
    const requestId = lineRequestId(this.ctx.batchId, customId);
    const parsed = parseOpenAiRequest(endpoint, raw.body, requestId);
    if (!parsed.ok) {
      const e = parsed.error;
      const where = e.param ? ` (body.${e.param})` : '';
      return fail('invalid_body', `line ${line}${where}: ${e.message}`, customId);
    }
    if (parsed.value.stream)
      return fail('invalid_body', `line ${line} (body.stream): streaming is not served in a batch`, customId);
    const generate: GenerateRequest = {
      ...parsed.value.generate,
      priorityClass: PriorityClass.PRIORITY_CLASS_BATCH,
    };
    try {
      const deployment = resolveDeployment(generate.model, this.ctx.deployments);
      const prompt = validateRequest(generate, deployment);
      return { ok: true, value: { line, customId, endpoint, deployment, prompt, generate } };
    } catch (e) {
      if (!(e instanceof CorralError)) throw e;
      const code = e.code === 'not_found' ? 'model_not_found' : 'invalid_body';
      return fail(code, `line ${line}: ${e.message}`, customId);
    }
  }
}
