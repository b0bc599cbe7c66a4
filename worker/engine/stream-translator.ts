/**
 * Turns the engine's OpenAI streaming chunks into corral GenerateEvents, purely (no I/O, clock injected by the
 * caller through the timestamps it passes):
 *   first chunk           -> Started{model, prompt_tokens, prompt_token_ids}
 *   chunk with text/ids   -> TextDelta{text, index, token_count, token_ids}
 *   finish_reason         -> remembered; usage chunk -> remembered
 *   [DONE]                -> Finished{reason, stop_reason, usage, timing}
 * vLLM with return_token_ids puts `prompt_token_ids` on the first completions choice, and at the top level of a
 * chat chunk; `token_ids` on every choice. Both places are read. Token ids are stripped from events when the
 * client did not ask for them (the worker always asks the engine, to count exactly).
 */
import { FinishReason, type GenerateEvent, type Usage } from '../../proto/gen/corral/v1/inference.ts';
import { EngineHttpError } from './engine-errors.ts';

interface ChoiceChunk {
  text?: unknown;
  delta?: { content?: unknown };
  finish_reason?: unknown;
  stop_reason?: unknown;
  token_ids?: unknown;
  prompt_token_ids?: unknown;
}

interface StreamChunk {
  model?: unknown;
  choices?: unknown;
  usage?: unknown;
  prompt_token_ids?: unknown;
  error?: unknown;
}

export interface TranslatorOptions {
  engineId: string;
  requestId: string;
  returnTokenIds: boolean;
  /** Prompt length known up front (prompt_token_ids input), used when the engine does not echo prompt ids. */
  knownPromptTokens?: number;
  /** When the worker received the call (ms), for Finished.timing. */
  startedAtMs: number;
}

export class StreamTranslator {
  private started = false;
  private generated = 0;
  private promptTokens: number;
  private finishReason = FinishReason.FINISH_REASON_UNSPECIFIED;
  private stopReason = '';
  private usage: Usage | undefined;
  private firstTokenAtMs: number | undefined;

  constructor(private readonly o: TranslatorOptions) {
    this.promptTokens = o.knownPromptTokens ?? 0;
  }

  /** Generated tokens streamed so far (for "stream broke after N tokens"). */
  get tokens(): number {
    return this.generated;
  }

  /** One `data:` payload (already JSON-parsed). Throws EngineHttpError for an error event. */
  onChunk(raw: unknown, nowMs: number): GenerateEvent[] {
    const chunk = (raw && typeof raw === 'object' ? raw : {}) as StreamChunk;
    if (chunk.error !== undefined) throw errorEvent(this.o.engineId, chunk.error);
    const events: GenerateEvent[] = [];
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as ChoiceChunk[]) : [];
    // corral sends n=1: one choice (index 0) per chunk, none in the closing usage chunk.
    const first = choices[0] && typeof choices[0] === 'object' ? choices[0] : undefined;
    if (!this.started) {
      this.started = true;
      const promptIds = idList(chunk.prompt_token_ids) ?? idList(first?.prompt_token_ids);
      if (promptIds) this.promptTokens = promptIds.length;
      events.push(
        this.event({
          $case: 'started',
          value: {
            model: typeof chunk.model === 'string' ? chunk.model : '',
            promptTokens: this.promptTokens,
            promptTokenIds: this.o.returnTokenIds ? (promptIds ?? []) : [],
          },
        }),
      );
    }
    if (first) {
      const text = typeof first.text === 'string' ? first.text : stringOr(first.delta?.content);
      const ids = idList(first.token_ids);
      const count = ids ? ids.length : text === '' ? 0 : 1;
      if (text !== '' || count > 0) {
        this.firstTokenAtMs ??= nowMs;
        events.push(
          this.event({
            $case: 'delta',
            value: {
              text,
              index: this.generated,
              tokenIds: this.o.returnTokenIds ? (ids ?? []) : [],
              tokenCount: count,
            },
          }),
        );
        this.generated += count;
      }
      if (typeof first.finish_reason === 'string') {
        this.finishReason = toFinishReason(first.finish_reason);
        if (typeof first.stop_reason === 'string') this.stopReason = first.stop_reason;
      }
    }
    const usage = toUsage(chunk.usage);
    if (usage) this.usage = usage;
    return events;
  }

  /** `[DONE]` arrived: the closing Finished event (exact usage from the engine when it sent one). */
  finish(nowMs: number): GenerateEvent {
    const usage = this.usage ?? {
      promptTokens: this.promptTokens,
      completionTokens: this.generated,
      totalTokens: this.promptTokens + this.generated,
    };
    return this.event({
      $case: 'finished',
      value: {
        reason: this.finishReason,
        stopReason: this.stopReason,
        usage,
        timing: {
          queueMs: 0,
          timeToFirstTokenMs: (this.firstTokenAtMs ?? nowMs) - this.o.startedAtMs,
          totalMs: nowMs - this.o.startedAtMs,
        },
      },
    });
  }

  private event(event: GenerateEvent['event']): GenerateEvent {
    return { requestId: this.o.requestId, event };
  }
}

function stringOr(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function idList(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
}

export function toFinishReason(reason: string): FinishReason {
  switch (reason) {
    case 'stop':
      return FinishReason.FINISH_REASON_STOP;
    case 'length':
      return FinishReason.FINISH_REASON_LENGTH;
    case 'abort':
      return FinishReason.FINISH_REASON_CANCELLED;
    default:
      return FinishReason.FINISH_REASON_UNSPECIFIED;
  }
}

function toUsage(v: unknown): Usage | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const u = v as { prompt_tokens?: unknown; completion_tokens?: unknown; total_tokens?: unknown };
  if (typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return undefined;
  return {
    promptTokens: u.prompt_tokens,
    completionTokens: u.completion_tokens,
    totalTokens: typeof u.total_tokens === 'number' ? u.total_tokens : u.prompt_tokens + u.completion_tokens,
  };
}

/** vLLM's mid-stream error: `data: {"error":{"message":...,"code":400}}`. */
function errorEvent(engineId: string, e: unknown): EngineHttpError {
  const obj = (e && typeof e === 'object' ? e : {}) as { message?: unknown; code?: unknown };
  const message =
    typeof obj.message === 'string' ? obj.message : typeof e === 'string' ? e : JSON.stringify(e);
  const status = typeof obj.code === 'number' ? obj.code : 500;
  return new EngineHttpError(engineId, status, message);
}
