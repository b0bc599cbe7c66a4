/**
 * Pure: the output line of each input line, in OpenAI's Batch API output shape
 *   {"id", "custom_id", "response": {"status_code", "request_id", "body"} | null, "error": {...} | null}
 * A request that ran has a response: status 200 and the completion body the HTTP front door would have sent
 * (openai-response.ts), or the status and OpenAI error body HTTP would have answered (http-errors.ts). Every
 * failed line has an error with its code, message and line number; one that never became a request (a bad
 * line, cancelled or expired before it was fed) has `response: null`.
 */
import { CorralError, toErrorCode } from '../../common/errors.ts';
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';
import { mapError } from '../http/http-errors.ts';
import type { Endpoint } from '../http/openai-request.ts';
import { OpenAiResponse } from '../http/openai-response.ts';
import type { LineError } from './batch-line.ts';

export interface OutputLine {
  id: string;
  custom_id: string | null;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string; line: number } | null;
}

/** Whether the line counts as completed (a 200 response) or failed (anything else). */
export function succeeded(o: OutputLine): boolean {
  return o.response?.status_code === 200;
}

function outputId(batchId: string, line: number): string {
  return `batch_req_${batchId}_${line}`;
}

export function lineErrorOutput(batchId: string, e: LineError): OutputLine {
  return {
    id: outputId(batchId, e.line),
    custom_id: e.customId,
    response: null,
    error: { code: e.code, message: e.message, line: e.line },
  };
}

export interface RanLine {
  batchId: string;
  line: number;
  customId: string;
  requestId: string;
  endpoint: Endpoint;
  model: string;
  /** Unix seconds, the completion's `created`. */
  created: number;
}

/** A request that finished: its events (Started, deltas, Finished) as the non-streaming completion body. */
export function completionOutput(r: RanLine, events: readonly GenerateEvent[]): OutputLine {
  const response = new OpenAiResponse({
    endpoint: r.endpoint,
    requestId: r.requestId,
    model: r.model,
    created: r.created,
    includeUsage: false,
  });
  for (const e of events) response.chunks(e);
  if (!response.finished)
    return failedOutput(
      r,
      new CorralError('internal', `request ${r.requestId} ended without a Finished event`),
    );
  return {
    id: outputId(r.batchId, r.line),
    custom_id: r.customId,
    response: { status_code: 200, request_id: r.requestId, body: response.body() },
    error: null,
  };
}

/**
 * A request refused or failed (by the context check, a budget, the queue, the engine): what HTTP would have
 * answered, and the line's error (its code, message and line number) as every failed line has.
 */
export function failedOutput(r: RanLine, e: unknown): OutputLine {
  const mapped = mapError(e);
  return {
    id: outputId(r.batchId, r.line),
    custom_id: r.customId,
    response: { status_code: mapped.status, request_id: r.requestId, body: mapped.body },
    error: {
      code: e instanceof CorralError ? e.code : 'internal',
      message: mapped.body.error.message,
      line: r.line,
    },
  };
}

/** The queue's terminal error of a request (its code and message as logged) as a CorralError. */
export function loggedError(code: string, message: string): CorralError {
  return new CorralError(toErrorCode(code), message);
}
