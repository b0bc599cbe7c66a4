/**
 * Base errors. Each carries readonly context and its cause; the mapping to a gRPC status or an HTTP code
 * happens only at the handler boundary (see controller/gateway and worker/agent).
 */

export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'unauthenticated'
  | 'permission_denied'
  | 'unimplemented'
  | 'internal';

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'invalid_argument',
  'not_found',
  'already_exists',
  'resource_exhausted',
  'failed_precondition',
  'unavailable',
  'deadline_exceeded',
  'cancelled',
  'unauthenticated',
  'permission_denied',
  'unimplemented',
  'internal',
]);

/** A code read back from storage (a stream log's terminal error) is one of ours, or is shown as internal. */
export function toErrorCode(code: string): ErrorCode {
  return ERROR_CODES.has(code) ? (code as ErrorCode) : 'internal';
}

export class CorralError extends Error {
  override name = 'CorralError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class InvalidArgumentError extends CorralError {
  override name = 'InvalidArgumentError';
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('invalid_argument', message, context);
  }
}

export class NotFoundError extends CorralError {
  override name = 'NotFoundError';
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('not_found', message, context);
  }
}

export class UnavailableError extends CorralError {
  override name = 'UnavailableError';
  constructor(message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('unavailable', message, context, options);
  }
}

export class ResourceExhaustedError extends CorralError {
  override name = 'ResourceExhaustedError';
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('resource_exhausted', message, context);
  }
}

/** One validation problem, located by its path in the input (`models[0].replicas.max`). */
export interface FieldError {
  path: string;
  message: string;
}

/** All the problems of one input at once, so the user fixes them in one go. */
export class ValidationError extends CorralError {
  override name = 'ValidationError';
  constructor(
    readonly what: string,
    readonly errors: readonly FieldError[],
  ) {
    super('invalid_argument', `invalid ${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, {
      errors,
    });
  }
}

/** Parsers return errors as values. */
export type Result<T, E = FieldError[]> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });
