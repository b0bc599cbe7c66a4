/**
 * Admission errors. The gateway maps them at its boundary: UnauthenticatedError -> UNAUTHENTICATED (HTTP 401),
 * OverBudgetError -> RESOURCE_EXHAUSTED (HTTP 429) with `retryAfterMs` as the retry hint (gRPC trailer
 * `retry-after-ms`, HTTP `Retry-After` rounded up to whole seconds).
 */
import { CorralError, ResourceExhaustedError } from '../../common/errors.ts';

/** Unknown, revoked or disabled API key. Never says which, so a caller cannot probe for valid keys. */
export class UnauthenticatedError extends CorralError {
  override name = 'UnauthenticatedError';
  constructor(reason: 'missing' | 'unknown' | 'revoked') {
    // The reason goes into the context (logged), not into the message the client sees.
    super('unauthenticated', 'invalid or missing API key', { reason });
  }
}

/** A tenant's request-rate or token budget is spent for now; it refills, so the client may retry later. */
export class OverBudgetError extends ResourceExhaustedError {
  override name = 'OverBudgetError';
  constructor(
    readonly tenant: string,
    readonly budget: 'requests' | 'tokens',
    readonly retryAfterMs: number,
  ) {
    super(`tenant ${tenant} is over its ${budget} budget; retry in ${retryAfterMs} ms`, {
      tenant,
      budget,
      retryAfterMs,
    });
  }
}

/** A single request needs more than a full bucket holds: waiting will never help, so it is not retryable. */
export class RequestTooLargeForBudgetError extends CorralError {
  override name = 'RequestTooLargeForBudgetError';
  constructor(
    readonly tenant: string,
    readonly tokens: number,
    readonly capacity: number,
  ) {
    super(
      'invalid_argument',
      `request needs ${tokens} tokens but tenant ${tenant}'s token budget holds at most ${capacity}`,
      { tenant, tokens, capacity },
    );
  }
}
