/** The handler boundary of the controller's services: corral error codes -> gRPC statuses. */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { CorralError, type ErrorCode } from '../common/errors.ts';

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
  internal: status.INTERNAL,
};

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (e instanceof CorralError) return { code: STATUS[e.code], details: e.message, metadata: new Metadata() };
  if (isServiceError(e)) return { code: e.code, details: e.details, metadata: e.metadata ?? new Metadata() };
  const message = e instanceof Error ? e.message : String(e);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

/** An error that came from a gRPC call (e.g. the worker's): passed through with its status and message. */
export function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && 'details' in e;
}
