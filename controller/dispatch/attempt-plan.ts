/**
 * What one attempt of a queued request sends to a worker, and how the worker's events become the request's
 * stream-log entries. Pure, so failover arithmetic is unit-tested without Redis or gRPC.
 *
 * First attempt: the client's request (max_tokens resolved by the gateway), with return_token_ids forced on:
 * the log must hold the prompt's and every delta's token ids, or no other group could continue the request.
 * The readers strip them again for clients that did not ask (stripTokenIds).
 *
 * Continuation (VLLM.md, "continue exactly by token ids"): after `next` generated tokens are in the log,
 *   prompt_token_ids = Started.prompt_token_ids ++ generated ids,  max_tokens = max_tokens - next,  same seed
 * and the attempt's events are shifted: delta index + next, usage counts the original prompt and every
 * generated token, its Started is dropped (the log has one).
 */
import {
  type Finished,
  FinishReason,
  type GenerateEvent,
  GenerateRequest,
  type Started,
} from '../../proto/gen/corral/v1/inference.ts';
import type { Progress } from '../queue/stream-log.ts';

/** The queue entry's body: the request as the gateway accepted it. Deterministic, so a retry hashes equal. */
export function serializeRequest(req: GenerateRequest): string {
  return JSON.stringify(GenerateRequest.toJSON(req));
}

export function parseRequest(body: string): GenerateRequest {
  return GenerateRequest.fromJSON(JSON.parse(body));
}

const parsedBodies = new WeakMap<{ body: string }, GenerateRequest>();

/** A taken request's body, parsed once per take: routing reads its prompt, then the run reads all of it. */
export function requestOf(taken: { body: string }): GenerateRequest {
  let req = parsedBodies.get(taken);
  if (!req) {
    req = parseRequest(taken.body);
    parsedBodies.set(taken, req);
  }
  return req;
}

/**
 * `to` carries the same body as `from`, already parsed (a request routed from its submit, then taken in that
 * submit's script): requestOf(to) reuses that parse instead of parsing the body a second time.
 */
export function shareParsedBody(from: { body: string }, to: { body: string }): void {
  const req = parsedBodies.get(from);
  if (req && !parsedBodies.has(to) && from.body === to.body) parsedBodies.set(to, req);
}

export type AttemptPlan =
  | { t: 'run'; request: GenerateRequest; offset: number; prompt: Started | undefined }
  /** Every token was generated already (the earlier attempt died before writing Finished). */
  | { t: 'complete'; offset: number; prompt: Started | undefined };

export function planAttempt(req: GenerateRequest, progress: Progress | undefined): AttemptPlan {
  const offset = progress?.nextTokenIndex ?? 0;
  const started = progress?.started;
  if (!started || offset === 0)
    return { t: 'run', request: { ...req, returnTokenIds: true }, offset: 0, prompt: undefined };
  const maxTokens = req.maxTokens ?? 0;
  if (maxTokens > 0 && offset >= maxTokens) return { t: 'complete', offset, prompt: started };
  return {
    t: 'run',
    offset,
    prompt: started,
    request: {
      ...req,
      input: { $case: 'promptTokenIds', value: { ids: [...started.promptTokenIds, ...progress.tokenIds] } },
      maxTokens: maxTokens > 0 ? maxTokens - offset : undefined,
      returnTokenIds: true,
    },
  };
}

export interface Shift {
  offset: number;
  /** The original request's Started (continuations only). */
  prompt: Started | undefined;
}

/**
 * A worker event as the log stores it, or undefined when the log must not get it (a continuation's Started).
 * Finished's usage is the whole request's; its timing is filled by the dispatcher.
 */
export function shiftEvent(requestId: string, e: GenerateEvent, s: Shift): GenerateEvent | undefined {
  const ev = e.event;
  if (!ev) return undefined;
  if (ev.$case === 'started') return s.prompt ? undefined : { requestId, event: ev };
  if (ev.$case === 'delta')
    return { requestId, event: { $case: 'delta', value: { ...ev.value, index: ev.value.index + s.offset } } };
  return { requestId, event: { $case: 'finished', value: wholeUsage(ev.value, s) } };
}

function wholeUsage(f: Finished, s: Shift): Finished {
  if (!s.prompt) return f;
  const completion = (f.usage?.completionTokens ?? 0) + s.offset;
  const prompt = s.prompt.promptTokens;
  return {
    ...f,
    usage: { promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion },
  };
}

/** The Finished a request gets when its tokens were all generated but the earlier attempt died first. */
export function completedFinished(requestId: string, s: Shift): GenerateEvent {
  const prompt = s.prompt?.promptTokens ?? 0;
  return {
    requestId,
    event: {
      $case: 'finished',
      value: {
        reason: FinishReason.FINISH_REASON_LENGTH, // it ran to max_tokens
        stopReason: '',
        usage: { promptTokens: prompt, completionTokens: s.offset, totalTokens: prompt + s.offset },
        timing: undefined,
      },
    },
  };
}

/** The event as a client that did not ask for token ids sees it. */
export function stripTokenIds(e: GenerateEvent): GenerateEvent {
  const ev = e.event;
  if (ev?.$case === 'started' && ev.value.promptTokenIds.length > 0)
    return { ...e, event: { $case: 'started', value: { ...ev.value, promptTokenIds: [] } } };
  if (ev?.$case === 'delta' && ev.value.tokenIds.length > 0)
    return { ...e, event: { $case: 'delta', value: { ...ev.value, tokenIds: [] } } };
  return e;
}
