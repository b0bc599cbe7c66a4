/**
 * One generation on one engine: POST the translated request, read the SSE stream, hand each GenerateEvent to
 * `emit`. Knows nothing of gRPC; failures are thrown as CorralErrors (EngineHttpError with the engine's own
 * message, EngineUnavailableError when it cannot be reached or its stream breaks) and mapped to a status at the
 * Worker service boundary. Aborting `signal` closes the HTTP connection, which makes vLLM abort the request
 * and free its KV blocks.
 */
import type { Clock } from '../../common/clock.ts';
import { CorralError, ValidationError } from '../../common/errors.ts';
import type { GenerateEvent, GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';
import type { EngineHttpClient } from './engine-client.ts';
import {
  EngineHttpError,
  EngineUnavailableError,
  engineErrorMessage,
  isConnectionError,
} from './engine-errors.ts';
import { toEngineRequest } from './openai-request.ts';
import { SseParser } from './sse.ts';
import { StreamTranslator } from './stream-translator.ts';

export interface GenerationTarget {
  engineId: string;
  address: string;
  servedModel: string;
}

export class RequestCancelledError extends CorralError {
  override name = 'RequestCancelledError';
  constructor(engineId: string) {
    super('cancelled', `request cancelled; engine ${engineId} request aborted`, { engineId });
  }
}

export async function runGeneration(options: {
  target: GenerationTarget;
  request: GenerateRequest;
  headers: Record<string, string>;
  signal: AbortSignal;
  http: EngineHttpClient;
  clock: Clock;
  emit: (event: GenerateEvent) => void | Promise<void>;
}): Promise<void> {
  const { target, request, signal, http, clock, emit } = options;
  const translated = toEngineRequest(request, target.servedModel);
  if (!translated.ok) throw new ValidationError('request', translated.error);
  const startedAtMs = clock.now();

  let response: Response;
  try {
    response = await http.post(
      target.address,
      translated.value.path,
      translated.value.body,
      options.headers,
      signal,
    );
  } catch (e) {
    if (signal.aborted) throw new RequestCancelledError(target.engineId);
    const why = isConnectionError(e)
      ? 'connection refused or reset'
      : e instanceof Error
        ? e.message
        : String(e);
    throw new EngineUnavailableError(
      `engine ${target.engineId} unreachable at ${target.address}: ${why}`,
      {},
      { cause: e },
    );
  }
  if (response.status !== 200 || !response.body) {
    const text = await response.text().catch(() => '');
    throw new EngineHttpError(target.engineId, response.status, engineErrorMessage(text));
  }

  const input = request.input;
  const translator = new StreamTranslator({
    engineId: target.engineId,
    requestId: request.requestId,
    returnTokenIds: request.returnTokenIds,
    knownPromptTokens: input?.$case === 'promptTokenIds' ? input.value.ids.length : undefined,
    startedAtMs,
  });
  const parser = new SseParser();
  let done = false;
  const handle = async (data: string) => {
    if (data === '[DONE]') {
      done = true;
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      throw new EngineUnavailableError(
        `engine ${target.engineId} sent a malformed event after ${translator.tokens} tokens: ${data.slice(0, 200)}`,
      );
    }
    for (const event of translator.onChunk(json, clock.now())) await emit(event);
  };

  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      for (const data of parser.push(chunk)) {
        await handle(data);
        if (done) break;
      }
      if (done) break;
    }
    if (!done) {
      for (const data of parser.end()) {
        await handle(data);
        if (done) break;
      }
    }
  } catch (e) {
    if (signal.aborted) throw new RequestCancelledError(target.engineId);
    if (e instanceof CorralError) throw e;
    throw new EngineUnavailableError(
      `engine ${target.engineId} stream broke after ${translator.tokens} tokens: ${e instanceof Error ? e.message : String(e)}`,
      {},
      { cause: e },
    );
  }
  if (signal.aborted) throw new RequestCancelledError(target.engineId);
  if (!done)
    throw new EngineUnavailableError(
      `engine ${target.engineId} stream broke after ${translator.tokens} tokens`,
    );
  await emit(translator.finish(clock.now()));
}
