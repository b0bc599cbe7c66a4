/**
 * The gRPC Inference service: a thin adapter over the request path (request-path.ts). The client's deadline
 * and cancellation become the path's deadline and AbortSignal; the path's CorralErrors become gRPC statuses
 * here and nowhere else.
 */
import { once } from 'node:events';
import type {
  Metadata,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceError,
  sendUnaryData,
} from '@grpc/grpc-js';
import { CorralError, InvalidArgumentError } from '../../common/errors.ts';
import { toServiceError } from '../../common/grpc-status.ts';
import { TRACEPARENT } from '../../common/trace-context.ts';
import type {
  CancelRequest,
  CancelResponse,
  GenerateEvent,
  GenerateRequest,
  InferenceServer,
  ListModelsRequest,
  ListModelsResponse,
  ResumeRequest,
} from '../../proto/gen/corral/v1/inference.ts';
import type { RequestPath } from './request-path.ts';

export function inferenceService(path: RequestPath): InferenceServer {
  return {
    generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
      void relayToClient(call, path);
    },
    cancel: (
      call: ServerUnaryCall<CancelRequest, CancelResponse>,
      callback: sendUnaryData<CancelResponse>,
    ) => {
      const id = call.request.requestId;
      if (id === '') {
        callback(toServiceError(new InvalidArgumentError('request_id is required')) as ServiceError, null);
        return;
      }
      callback(null, { found: path.cancel(id, `request ${id} cancelled by Cancel`) });
    },
    // Replaced by the stream-log reader when the durable queue is wired (issue 5); until then there is no log to
    // resume from, and the client is told so.
    resume: (call: ServerWritableStream<ResumeRequest, GenerateEvent>) => {
      call.destroy(
        toServiceError(
          new CorralError(
            'unimplemented',
            'Resume needs the durable queue, which this controller does not run yet',
          ),
        ) as ServiceError,
      );
    },
    listModels: (
      _call: ServerUnaryCall<ListModelsRequest, ListModelsResponse>,
      callback: sendUnaryData<ListModelsResponse>,
    ) => {
      callback(null, { models: path.listModels() });
    },
  };
}

async function relayToClient(
  call: ServerWritableStream<GenerateRequest, GenerateEvent>,
  path: RequestPath,
): Promise<void> {
  const gone = new AbortController();
  const onCancelled = () => gone.abort();
  call.on('cancelled', onCancelled);
  const deadline = call.getDeadline();
  try {
    const events = path.generate(call.request, {
      signal: gone.signal,
      deadline:
        deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined,
      traceparent: metadataValue(call.metadata, TRACEPARENT),
      requestId: metadataValue(call.metadata, 'x-request-id'),
    });
    for await (const event of events) {
      if (!call.write(event) && !gone.signal.aborted) {
        // A client that reads slower than tokens arrive: wait for it (or for it to go away).
        await once(call, 'drain', { signal: gone.signal }).catch(() => {});
      }
    }
    call.end();
  } catch (e) {
    if (!call.cancelled) call.emit('error', toServiceError(e));
  } finally {
    call.off('cancelled', onCancelled);
  }
}

function metadataValue(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}
