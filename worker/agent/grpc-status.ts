/** The handler boundary: corral error codes -> gRPC statuses, for the Worker service. */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { CorralError, type ErrorCode } from '../../common/errors.ts';

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

export function grpcStatusOf(code: ErrorCode): status {
  return STATUS[code];
}

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (e instanceof CorralError) return { code: STATUS[e.code], details: e.message, metadata: new Metadata() };
  const message = e instanceof Error ? e.message : String(e);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}
