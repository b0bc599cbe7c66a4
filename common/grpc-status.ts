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

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (e instanceof CorralError) return { code: STATUS[e.code], details: e.message, metadata: new Metadata() };
  if (isServiceError(e)) return { code: e.code, details: e.details, metadata: e.metadata ?? new Metadata() };
  const message = e instanceof Error ? e.message : String(e);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

/** An error that came from a gRPC call (e.g. a worker's). */
export function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && 'details' in e;
}

/** A status from another corral service, as the CorralError it was there (message unchanged). */
export function fromServiceError(e: ServiceError): CorralError {
  return new CorralError(CODE.get(e.code) ?? 'internal', e.details || e.message, { grpcStatus: e.code });
}
