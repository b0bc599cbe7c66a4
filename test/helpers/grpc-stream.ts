/** Collecting a server stream of GenerateEvents into what a test asserts on. */
import type { ClientReadableStream } from '@grpc/grpc-js';
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';

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
