/**
 * A typed client of corral's gRPC Inference API.
 *
 *   const corral = new CorralClient({ address: '127.0.0.1:7070' });
 *   for await (const event of corral.generate({ model, prompt: 'Hello' }, { signal, timeoutMs: 30_000 })) {
 *     if (event.type === 'delta') process.stdout.write(event.text);
 *   }
 *
 * Streaming is an async iterator; deadlines are gRPC deadlines; an AbortSignal cancels the call (and so the
 * request on the engine). Retries happen only where they cannot run a request twice: a Generate whose call
 * failed UNAVAILABLE before any event arrived, which carries the same request id, a Resume (it only reads), and
 * idempotent unary calls.
 *
 * A stream that breaks mid-way (the controller restarted, the connection dropped) is picked up with resume():
 *   corral.resume({ model, requestId, afterTokenIndex: tokensReceived })
 * streams the rest of the request from its log on any controller, with no gap and no duplicate.
 */
import { randomUUID } from 'node:crypto';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  InferenceClient,
  type ModelInfo,
  PriorityClass,
} from '../proto/gen/corral/v1/inference.ts';
import { CorralClientError } from './errors.ts';

export interface ClientOptions {
  address: string;
  /** Sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** Attempts for calls that are safe to retry (default 3). */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt (default 200 ms). */
  retryBaseMs?: number;
  /**
   * Ping the server after this long without a frame (default 10 s; the controller accepts pings every 5 s) and
   * drop the connection when a ping is not answered within keepaliveTimeoutMs (default 5 s): a server that hangs
   * (alive, its connection open, answering nothing) then fails its calls with UNAVAILABLE instead of leaving
   * them waiting forever, and generateDurably carries on on another replica.
   */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface GenerateParams {
  model: string;
  prompt?: string;
  messages?: ChatMessage[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
  minTokens?: number;
  priority?: number;
  returnTokenIds?: boolean;
}

export interface CallOptions {
  /** Request id; generated when absent. Resubmitting the same id never runs the request twice. */
  requestId?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ResumeParams {
  model: string;
  requestId: string;
  /** Generated tokens already received (the sum of the deltas' tokenCount); 0 replays from Started. */
  afterTokenIndex: number;
}

export type FinishReasonName = 'stop' | 'length' | 'cancelled' | 'unknown';

export type GenerationEvent =
  | { type: 'started'; requestId: string; model: string; promptTokens: number; promptTokenIds: number[] }
  | { type: 'delta'; requestId: string; text: string; index: number; tokenCount: number; tokenIds: number[] }
  | {
      type: 'finished';
      requestId: string;
      reason: FinishReasonName;
      stopReason: string;
      usage: { promptTokens: number; completionTokens: number; totalTokens: number };
      timing: { queueMs: number; timeToFirstTokenMs: number; totalMs: number };
    };

export interface Completion {
  requestId: string;
  text: string;
  reason: FinishReasonName;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
}

export class CorralClient {
  private readonly grpc: InferenceClient;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;

  constructor(private readonly options: ClientOptions) {
    this.grpc = new InferenceClient(options.address, credentials.createInsecure(), {
      'grpc.keepalive_time_ms': options.keepaliveTimeMs ?? 10_000,
      'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 200;
  }

  close(): void {
    this.grpc.close();
  }

  /** Streams a generation's events; fails with CorralClientError (an abort by the signal: CANCELLED). */
  generate(params: GenerateParams, call: CallOptions = {}): AsyncGenerator<GenerationEvent> {
    const request = toRequest(params, call.requestId ?? randomUUID());
    return this.stream((md, opts) => this.grpc.generate(request, md, opts), call);
  }

  /**
   * The events of a request this client (or another) started, after the tokens already received: the rest of
   * its deltas, then Finished or its error. NOT_FOUND: the request is unknown (or ended long ago).
   */
  resume(params: ResumeParams, call: Omit<CallOptions, 'requestId'> = {}): AsyncGenerator<GenerationEvent> {
    const request = {
      requestId: params.requestId,
      model: params.model,
      afterTokenIndex: params.afterTokenIndex,
    };
    return this.stream((md, opts) => this.grpc.resume(request, md, opts), call);
  }

  private async *stream(
    open: (md: Metadata, opts: { deadline?: number }) => ClientReadableStream<GenerateEvent>,
    call: Omit<CallOptions, 'requestId'>,
  ): AsyncGenerator<GenerationEvent> {
    const deadline = call.timeoutMs === undefined ? undefined : Date.now() + call.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      let received = 0;
      const stream = open(this.metadata(), deadline ? { deadline } : {});
      const abort = () => stream.cancel();
      if (call.signal?.aborted) abort();
      call.signal?.addEventListener('abort', abort, { once: true });
      try {
        for await (const raw of stream as AsyncIterable<GenerateEvent>) {
          received += 1;
          const event = fromEvent(raw);
          if (event) yield event;
        }
        return;
      } catch (e) {
        const error = CorralClientError.from(e);
        // Only a call that never produced an event may be retried: the same request id attaches to the
        // same request on the controller, so a retry cannot run it twice.
        const retriable = error.code === status.UNAVAILABLE && received === 0 && !call.signal?.aborted;
        if (!retriable || attempt >= this.maxAttempts || (deadline && Date.now() >= deadline)) throw error;
        await sleep(this.retryBaseMs * 2 ** (attempt - 1), call.signal);
      } finally {
        call.signal?.removeEventListener('abort', abort);
        stream.cancel(); // no-op once ended; releases the call if the consumer stopped iterating early
      }
    }
  }

  /** Runs a generation to the end and returns its text and usage. */
  async complete(params: GenerateParams, call: CallOptions = {}): Promise<Completion> {
    let text = '';
    for await (const e of this.generate(params, call)) {
      if (e.type === 'delta') text += e.text;
      if (e.type === 'finished') return { requestId: e.requestId, text, reason: e.reason, usage: e.usage };
    }
    throw new CorralClientError(status.INTERNAL, 'the stream ended without a finished event');
  }

  async cancel(requestId: string, timeoutMs = 5000): Promise<boolean> {
    const res = await this.unary<{ requestId: string }, { found: boolean }>(
      (req, md, opts, cb) => this.grpc.cancel(req, md, opts, cb),
      { requestId },
      timeoutMs,
    );
    return res.found;
  }

  async listModels(timeoutMs = 5000): Promise<ModelInfo[]> {
    const res = await this.unary<object, { models: ModelInfo[] }>(
      (req, md, opts, cb) => this.grpc.listModels(req, md, opts, cb),
      {},
      timeoutMs,
    );
    return res.models;
  }

  private metadata(): Metadata {
    const md = new Metadata();
    if (this.options.apiKey) md.set('authorization', `Bearer ${this.options.apiKey}`);
    return md;
  }

  /** Unary calls here are idempotent (list, cancel by id), so UNAVAILABLE is retried. */
  private async unary<Req, Res>(
    invoke: (
      req: Req,
      md: Metadata,
      opts: { deadline: number },
      cb: (err: Error | null, res: Res) => void,
    ) => unknown,
    req: Req,
    timeoutMs: number,
  ): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise<Res>((resolve, reject) =>
          invoke(req, this.metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res))),
        );
      } catch (e) {
        const error = CorralClientError.from(e);
        if (error.code !== status.UNAVAILABLE || attempt >= this.maxAttempts || Date.now() >= deadline)
          throw error;
        await sleep(this.retryBaseMs * 2 ** (attempt - 1));
      }
    }
  }
}

function toRequest(p: GenerateParams, requestId: string): GenerateRequest {
  if ((p.prompt === undefined) === (p.messages === undefined)) {
    throw new CorralClientError(status.INVALID_ARGUMENT, 'give exactly one of prompt and messages');
  }
  return {
    model: p.model,
    requestId,
    input:
      p.prompt !== undefined
        ? { $case: 'prompt', value: p.prompt }
        : { $case: 'chat', value: { messages: p.messages ?? [] } },
    maxTokens: p.maxTokens,
    sampling: {
      temperature: p.temperature,
      topP: p.topP,
      topK: p.topK,
      seed: p.seed,
      stop: p.stop ?? [],
      ignoreEos: p.ignoreEos ?? false,
      minTokens: p.minTokens ?? 0,
    },
    priority: p.priority ?? 0,
    returnTokenIds: p.returnTokenIds ?? false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  };
}

const FINISH: Record<number, FinishReasonName> = {
  [FinishReason.FINISH_REASON_STOP]: 'stop',
  [FinishReason.FINISH_REASON_LENGTH]: 'length',
  [FinishReason.FINISH_REASON_CANCELLED]: 'cancelled',
};

function fromEvent(raw: GenerateEvent): GenerationEvent | undefined {
  const e = raw.event;
  const requestId = raw.requestId;
  switch (e?.$case) {
    case 'started':
      return {
        type: 'started',
        requestId,
        model: e.value.model,
        promptTokens: e.value.promptTokens,
        promptTokenIds: e.value.promptTokenIds,
      };
    case 'delta':
      return {
        type: 'delta',
        requestId,
        text: e.value.text,
        index: e.value.index,
        tokenCount: e.value.tokenCount,
        tokenIds: e.value.tokenIds,
      };
    case 'finished':
      return {
        type: 'finished',
        requestId,
        reason: FINISH[e.value.reason] ?? 'unknown',
        stopReason: e.value.stopReason,
        usage: e.value.usage ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
        timing: e.value.timing ?? { queueMs: 0, timeToFirstTokenMs: 0, totalMs: 0 },
      };
    default:
      return undefined;
  }
}

/** Resolves after ms, or at once when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    // The listener goes with the timer: a long-lived signal must not collect one per sleep.
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
