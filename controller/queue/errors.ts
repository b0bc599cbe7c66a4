/**
 * Queue errors, mapped to a status by the gateway: RequestIdConflictError -> ALREADY_EXISTS,
 * QueueFullError -> RESOURCE_EXHAUSTED with `retryAfterMs`, RequestExpiredError -> DEADLINE_EXCEEDED.
 */
import { CorralError, ResourceExhaustedError } from '../../common/errors.ts';

/** The request id is taken by a request with another body (or another tenant): never run two under one id. */
export class RequestIdConflictError extends CorralError {
  override name = 'RequestIdConflictError';
  constructor(readonly requestId: string) {
    super('already_exists', `request id ${requestId} is already used by a different request`, { requestId });
  }
}

/** The deployment's queue would make this request wait longer than its bound: come back later. */
export class QueueFullError extends ResourceExhaustedError {
  override name = 'QueueFullError';
  constructor(
    readonly deployment: string,
    readonly retryAfterMs: number,
    readonly expectedWaitMs: number | undefined,
    readonly reason: 'wait' | 'depth',
  ) {
    super(
      `deployment ${deployment} is overloaded (${reason === 'wait' ? `expected wait ${Math.round(expectedWaitMs ?? 0)} ms` : 'queue full'}); retry in ${retryAfterMs} ms`,
      { deployment, retryAfterMs, expectedWaitMs, reason },
    );
  }
}

/** The request's deadline had passed already when it was submitted. */
export class RequestExpiredError extends CorralError {
  override name = 'RequestExpiredError';
  constructor(readonly requestId: string) {
    super('deadline_exceeded', `request ${requestId} reached its deadline before it was queued`, {
      requestId,
    });
  }
}
