import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CorralClientError } from '../../../client/errors.ts';
import { RETRY_AFTER_MS } from '../../../common/grpc-status.ts';

function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata });
}

describe('CorralClientError.from', () => {
  it('carries the retry hint of a refusal that has one', () => {
    const md = new Metadata();
    md.set(RETRY_AFTER_MS, '1500');
    const e = CorralClientError.from(serviceError(status.RESOURCE_EXHAUSTED, 'over budget', md));
    expect(e).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: 'over budget', retryAfterMs: 1500 });
    expect(e.codeName).toBe('RESOURCE_EXHAUSTED');
  });

  it('has none when the server sent none', () => {
    const e = CorralClientError.from(serviceError(status.UNAUTHENTICATED, 'invalid or missing API key'));
    expect(e.retryAfterMs).toBeUndefined();
    expect(CorralClientError.from(new Error('boom')).retryAfterMs).toBeUndefined();
  });
});
