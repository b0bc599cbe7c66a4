import { describe, expectTypeOf, it } from 'vitest';
import type { createRequestPath } from '../../../../controller/gateway/request-path.ts';
import type { RequestPath } from '../../../../controller/http/request-path.ts';

describe('RequestPath', () => {
  it('is satisfied by the gateway request path that gRPC Inference uses (checked by tsc)', () => {
    expectTypeOf<ReturnType<typeof createRequestPath>>().toExtend<RequestPath>();
  });
});
