/**
 * Errors from talking to an engine, classified by corral's error codes. The gRPC status is chosen only at the
 * Worker service boundary (common/grpc-status.ts).
 */
import { CorralError, type ErrorCode } from '../../common/errors.ts';

/** The engine answered with an HTTP error (or an error event mid-stream); its own message is kept verbatim. */
export class EngineHttpError extends CorralError {
  override name = 'EngineHttpError';
  constructor(
    readonly engineId: string,
    readonly httpStatus: number,
    readonly engineMessage: string,
  ) {
    super(httpStatusToCode(httpStatus), engineMessage, { engineId, httpStatus });
  }
}

/** The engine could not be reached or its stream ended without `[DONE]`. */
export class EngineUnavailableError extends CorralError {
  override name = 'EngineUnavailableError';
  constructor(message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('unavailable', message, context, options);
  }
}

export function httpStatusToCode(status: number): ErrorCode {
  switch (status) {
    case 400:
    case 422:
      return 'invalid_argument';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'permission_denied';
    case 404:
      return 'not_found';
    case 408:
      return 'deadline_exceeded';
    case 429:
      return 'resource_exhausted';
    default:
      // 500 is what vLLM answers once its engine core died (EngineDeadError); 502/503/504 are overload or
      // shutdown. All mean "this engine cannot serve now": retrying elsewhere is right, so UNAVAILABLE.
      return status >= 500 ? 'unavailable' : 'internal';
  }
}

/** Pulls the message out of vLLM's error JSON `{"error":{"message":...}}` (or `{"message":...}`, or raw text). */
export function engineErrorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed && typeof parsed === 'object') {
      const e = (parsed as { error?: unknown }).error;
      if (typeof e === 'string') return e;
      if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
        return (e as { message: string }).message;
      }
      const m = (parsed as { message?: unknown }).message;
      if (typeof m === 'string') return m;
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  const text = body.trim();
  return text === '' ? '(empty response body)' : text.slice(0, 500);
}

/** Node's fetch reports "connection refused" as TypeError('fetch failed') with the socket error as cause. */
export function isConnectionError(e: unknown): boolean {
  const cause = e instanceof Error ? (e.cause as { code?: unknown } | undefined) : undefined;
  const code = cause && typeof cause === 'object' ? cause.code : undefined;
  return (
    typeof code === 'string' &&
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'EHOSTUNREACH'].includes(code)
  );
}
