import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CorralError, InvalidArgumentError } from '../../../common/errors.ts';
import { fromServiceError, RETRY_AFTER_MS, toServiceError } from '../../../common/grpc-status.ts';
import { OverBudgetError, UnauthenticatedError } from '../../../controller/tenancy/errors.ts';

function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata });
}

describe('toServiceError', () => {
  it('puts a refusal retry hint in the retry-after-ms trailer, rounded up to whole ms', () => {
    const e = toServiceError(new OverBudgetError('acme', 'tokens', 1500.2));
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(e.metadata?.get(RETRY_AFTER_MS)).toEqual(['1501']);
  });

  it('sends no retry hint when the error has none', () => {
    expect(toServiceError(new InvalidArgumentError('bad')).metadata?.get(RETRY_AFTER_MS)).toEqual([]);
    const nonsense = new CorralError('resource_exhausted', 'full', { retryAfterMs: Number.NaN });
    expect(toServiceError(nonsense).metadata?.get(RETRY_AFTER_MS)).toEqual([]);
  });

  it('maps unauthenticated with the generic message only', () => {
    const e = toServiceError(new UnauthenticatedError('revoked'));
    expect(e).toMatchObject({ code: status.UNAUTHENTICATED, details: 'invalid or missing API key' });
  });
});

describe('fromServiceError', () => {
  it('keeps a retry hint from another corral service, so HTTP can send Retry-After', () => {
    const md = new Metadata();
    md.set(RETRY_AFTER_MS, '2500');
    const e = fromServiceError(serviceError(status.RESOURCE_EXHAUSTED, 'busy', md));
    expect(e).toMatchObject({ code: 'resource_exhausted', message: 'busy' });
    expect(e.context).toEqual({ grpcStatus: status.RESOURCE_EXHAUSTED, retryAfterMs: 2500 });
  });

  it('ignores a retry trailer that is not a positive number', () => {
    const md = new Metadata();
    md.set(RETRY_AFTER_MS, 'soon');
    expect(fromServiceError(serviceError(status.RESOURCE_EXHAUSTED, 'busy', md)).context).toEqual({
      grpcStatus: status.RESOURCE_EXHAUSTED,
    });
  });
});
