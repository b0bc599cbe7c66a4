/** The error every client call rejects with: the gRPC status, its name and the server's message. */
import { type ServiceError, status } from '@grpc/grpc-js';
import { retryAfterMsOf } from '../common/grpc-status.ts';

export class CorralClientError extends Error {
  override name = 'CorralClientError';
  constructor(
    readonly code: status,
    readonly details: string,
    options?: { cause?: unknown },
    /** RESOURCE_EXHAUSTED refusals (over budget, overloaded) say when a retry would be admitted. */
    readonly retryAfterMs?: number,
  ) {
    super(`${status[code] ?? code}: ${details}`, options);
  }

  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }

  static from(e: unknown): CorralClientError {
    if (e instanceof CorralClientError) return e;
    const se = e as Partial<ServiceError>;
    if (typeof se?.code === 'number')
      return new CorralClientError(
        se.code,
        se.details || se.message || '',
        { cause: e },
        se.metadata ? retryAfterMsOf({ metadata: se.metadata }) : undefined,
      );
    return new CorralClientError(status.UNKNOWN, e instanceof Error ? e.message : String(e), { cause: e });
  }
}
