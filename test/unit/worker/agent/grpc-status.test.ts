import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../../../common/errors.ts';
import { toServiceError } from '../../../../common/grpc-status.ts';
import { EngineHttpError, EngineUnavailableError } from '../../../../worker/engine/engine-errors.ts';

describe('toServiceError', () => {
  it.each([
    [new EngineHttpError('e1', 400, 'bad'), status.INVALID_ARGUMENT, 'bad'],
    [
      new EngineHttpError('e1', 404, 'The model `x` does not exist.'),
      status.NOT_FOUND,
      'The model `x` does not exist.',
    ],
    [new EngineHttpError('e1', 429, 'slow down'), status.RESOURCE_EXHAUSTED, 'slow down'],
    [new EngineHttpError('e1', 503, 'overloaded'), status.UNAVAILABLE, 'overloaded'],
    [
      new EngineUnavailableError('engine e1 stream broke after 3 tokens'),
      status.UNAVAILABLE,
      'engine e1 stream broke after 3 tokens',
    ],
    [
      new NotFoundError('engine x not found on worker n1'),
      status.NOT_FOUND,
      'engine x not found on worker n1',
    ],
    [new Error('oops'), status.INTERNAL, 'internal error: oops'],
  ])('%s -> %i', (error, code, details) => {
    expect(toServiceError(error)).toMatchObject({ code, details });
  });
});
