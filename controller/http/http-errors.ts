/**
 * The HTTP boundary's error mapping: corral's error codes (and gRPC statuses from a worker) to HTTP statuses
 * and OpenAI's error body `{"error":{"message","type","param","code"}}`. The type names and the numeric
 * `code` follow vLLM's OpenAI server, which is what existing clients of a self-hosted model already see.
 */
import { CorralError, type ErrorCode } from '../../common/errors.ts';
import { fromServiceError, isServiceError } from '../../common/grpc-status.ts';

/** A request the HTTP layer itself refuses (bad JSON, wrong type, unknown route), with the field it blames. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

const STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  resource_exhausted: 429,
  // nginx's "client closed request": the request was cancelled (by its client or a Cancel call) and must not
  // look like a server fault that SDKs retry (they retry 5xx, 408, 409 and 429).
  cancelled: 499,
  internal: 500,
  unimplemented: 501,
  unavailable: 503,
  deadline_exceeded: 504,
};

const TYPE: Record<number, string> = {
  400: 'BadRequestError',
  401: 'AuthenticationError',
  403: 'PermissionDeniedError',
  404: 'NotFoundError',
  405: 'MethodNotAllowedError',
  409: 'ConflictError',
  413: 'RequestTooLargeError',
  415: 'UnsupportedMediaTypeError',
  429: 'RateLimitError',
  499: 'CancelledError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
  504: 'GatewayTimeoutError',
};

/** Seconds a 429 asks the client to wait when the refusal does not say (queue full, quota). */
const DEFAULT_RETRY_AFTER_S = 1;

export interface MappedError {
  status: number;
  headers: Record<string, string>;
  body: OpenAiErrorBody;
}

export function errorBody(status: number, message: string, param: string | null = null): OpenAiErrorBody {
  return { error: { message, type: TYPE[status] ?? 'Error', param, code: status } };
}

/** Any error thrown while serving a request, as the response to send. Unknown errors are a 500, never a 400. */
export function mapError(e: unknown): MappedError {
  if (e instanceof HttpError) {
    return { status: e.status, headers: { ...e.headers }, body: errorBody(e.status, e.message, e.param) };
  }
  const corral = e instanceof CorralError ? e : isServiceError(e) ? fromServiceError(e) : undefined;
  if (!corral) {
    const message = e instanceof Error ? e.message : String(e);
    return { status: 500, headers: {}, body: errorBody(500, `internal error: ${message}`) };
  }
  const status = STATUS[corral.code];
  const headers: Record<string, string> = {};
  if (status === 429) headers['retry-after'] = String(retryAfterSeconds(corral));
  return { status, headers, body: errorBody(status, corral.message, paramOf(corral)) };
}

/** A refusal may say how long to wait (`retryAfterMs` in its context, e.g. from a quota's refill time). */
function retryAfterSeconds(e: CorralError): number {
  const ms = e.context.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0
    ? Math.ceil(ms / 1000)
    : DEFAULT_RETRY_AFTER_S;
}

/** A ValidationError's first field path, so `param` names the field as OpenAI's errors do. */
function paramOf(e: CorralError): string | null {
  const errors = e.context.errors;
  if (!Array.isArray(errors)) return null;
  const first: unknown = errors[0];
  if (typeof first === 'object' && first !== null && typeof (first as { path?: unknown }).path === 'string') {
    return (first as { path: string }).path;
  }
  return null;
}
