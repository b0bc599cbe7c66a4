/** Collecting a server stream of GenerateEvents into what a test asserts on. */
import { type ClientReadableStream, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  type GenerateEvent,
  type GenerateRequest,
  type InferenceClient,
  PriorityClass,
} from '../../proto/gen/corral/v1/inference.ts';

export interface CollectedGeneration {
  requestId: string;
  text: string;
  deltas: number;
  tokens: number; // sum of token_count over deltas
  promptTokens: number | undefined; // from Started
  usage: { promptTokens: number; completionTokens: number } | undefined;
  finish: number | undefined;
  events: GenerateEvent[];
}

export async function collect(call: ClientReadableStream<GenerateEvent>): Promise<CollectedGeneration> {
  const out: CollectedGeneration = {
    requestId: '',
    text: '',
    deltas: 0,
    tokens: 0,
    promptTokens: undefined,
    usage: undefined,
    finish: undefined,
    events: [],
  };
  for await (const event of call as AsyncIterable<GenerateEvent>) {
    out.events.push(event);
    out.requestId = event.requestId;
    const e = event.event;
    if (e?.$case === 'started') out.promptTokens = e.value.promptTokens;
    if (e?.$case === 'delta') {
      out.text += e.value.text;
      out.deltas += 1;
      out.tokens += e.value.tokenCount;
    }
    if (e?.$case === 'finished') {
      out.finish = e.value.reason;
      out.usage = e.value.usage && {
        promptTokens: e.value.usage.promptTokens,
        completionTokens: e.value.usage.completionTokens,
      };
    }
  }
  return out;
}

/**
 * A request that generates exactly `maxTokens` tokens (ignore_eos; seed 1, so a rerun gives the same text), its
 * id in the prompt: what the e2e tests count to see every request served in full.
 */
export function countedRequest(model: string, requestId: string, maxTokens: number): GenerateRequest {
  return {
    model,
    requestId,
    input: { $case: 'prompt', value: `Request ${requestId}: tell me about the Rocky Mountains.` },
    maxTokens,
    sampling: { seed: 1, stop: [], ignoreEos: true, minTokens: 0 },
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  };
}

export type TokenOutcome = { ok: true; tokens: number } | { ok: false; code: number; details: string };

/** Streams `request` to its end: the completion tokens its usage reports, or the gRPC error it ended with. */
export async function completionTokens(
  client: InferenceClient,
  request: GenerateRequest,
  timeoutMs: number,
): Promise<TokenOutcome> {
  try {
    const r = await collect(client.generate(request, new Metadata(), { deadline: Date.now() + timeoutMs }));
    return { ok: true, tokens: r.usage?.completionTokens ?? 0 };
  } catch (e) {
    const se = e as ServiceError;
    return { ok: false, code: se.code, details: se.details };
  }
}
