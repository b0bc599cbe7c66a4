/**
 * The handler boundary of every gRPC service: corral error codes <-> gRPC statuses. Errors are CorralErrors
 * inside; only a service handler turns them into a status, and only a client of another corral service turns a
 * status back into a CorralError (so a worker's INVALID_ARGUMENT reaches an HTTP client as a 400 unchanged).
 */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { CorralError, type ErrorCode } from './errors.ts';

const STATUS: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  failed_precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  unimplemented: status.UNIMPLEMENTED,
  internal: status.INTERNAL,
};

const CODE = new Map<status, ErrorCode>(Object.entries(STATUS).map(([k, v]) => [v, k as ErrorCode]));

export function grpcStatusOf(code: ErrorCode): status {
  return STATUS[code];
}

/**
 * Trailer carrying a refusal's retry hint in milliseconds (a budget's refill time, a queue's expected wait);
 * HTTP says the same with `Retry-After` in whole seconds.
 */
export const RETRY_AFTER_MS = 'retry-after-ms';

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (e instanceof CorralError) return { code: STATUS[e.code], details: e.message, metadata: trailers(e) };
  if (isServiceError(e)) return { code: e.code, details: e.details, metadata: e.metadata ?? new Metadata() };
  const message = e instanceof Error ? e.message : String(e);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

function trailers(e: CorralError): Metadata {
  const metadata = new Metadata();
  const ms = e.context.retryAfterMs;
  if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0)
    metadata.set(RETRY_AFTER_MS, String(Math.ceil(ms)));
  return metadata;
}

/** An error that came from a gRPC call (e.g. a worker's). */
export function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && 'details' in e;
}

/** A status from another corral service, as the CorralError it was there (message unchanged). */
export function fromServiceError(e: ServiceError): CorralError {
  const retryAfterMs = retryAfterMsOf(e);
  return new CorralError(CODE.get(e.code) ?? 'internal', e.details || e.message, {
    grpcStatus: e.code,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/** The `retry-after-ms` trailer of a failed call, when it carries a usable one. */
export function retryAfterMsOf(e: Pick<ServiceError, 'metadata'>): number | undefined {
  const raw = e.metadata?.get(RETRY_AFTER_MS)[0];
  const ms = typeof raw === 'string' ? Number(raw) : Number.NaN;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
