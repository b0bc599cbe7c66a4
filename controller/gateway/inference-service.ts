/**
 * The gRPC Inference service: a thin adapter over the request path (request-path.ts). The client's deadline
 * and cancellation become the path's deadline and AbortSignal; the path's CorralErrors become gRPC statuses
 * here and nowhere else. The API key travels in metadata (`authorization: Bearer <key>` or `x-api-key`):
 * Generate and Resume hand it to the path (admission runs there), the other calls are authenticated
 * here first, so with tenants configured nothing answers a caller without a valid key.
 */
import { once } from 'node:events';
import type {
  Metadata,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceError,
  sendUnaryData,
} from '@grpc/grpc-js';
import { InvalidArgumentError } from '../../common/errors.ts';
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
import type { Admission } from '../admission/admission.ts';
import { apiKeyOfMetadata } from '../admission/api-key.ts';
import type { RequestContext, RequestPath } from './request-path.ts';

export function inferenceService(path: RequestPath, admission: Admission): InferenceServer {
  /** The caller's tenant, or the refusal to answer with. */
  const authenticate = (md: Metadata) => admission.identify(apiKeyOfMetadata(md), undefined);
  return {
    generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
      void relayToClient(call, (ctx) => path.generate(call.request, ctx));
    },
    cancel: (
      call: ServerUnaryCall<CancelRequest, CancelResponse>,
      callback: sendUnaryData<CancelResponse>,
    ) => {
      const id = call.request.requestId;
      let tenant: string;
      try {
        tenant = authenticate(call.metadata).tenant;
      } catch (e) {
        callback(toServiceError(e) as ServiceError, null);
        return;
      }
      if (id === '') {
        callback(toServiceError(new InvalidArgumentError('request_id is required')) as ServiceError, null);
        return;
      }
      // Only the caller's own requests: another tenant's id answers found: false, as an unknown one does.
      path.cancel(id, tenant, `request ${id} cancelled by Cancel`).then(
        (found) => callback(null, { found }),
        (e: unknown) => callback(toServiceError(e) as ServiceError, null),
      );
    },
    // The request's events from its stream log, after the client's last seen token (the path authenticates).
    resume: (call: ServerWritableStream<ResumeRequest, GenerateEvent>) => {
      void relayToClient(call, (ctx) => path.resume(call.request, ctx));
    },
    listModels: (
      call: ServerUnaryCall<ListModelsRequest, ListModelsResponse>,
      callback: sendUnaryData<ListModelsResponse>,
    ) => {
      try {
        authenticate(call.metadata);
        callback(null, { models: path.listModels() });
      } catch (e) {
        callback(toServiceError(e) as ServiceError, null);
      }
    },
  };
}

async function relayToClient<Req>(
  call: ServerWritableStream<Req, GenerateEvent>,
  open: (ctx: RequestContext) => AsyncIterable<GenerateEvent>,
): Promise<void> {
  const gone = new AbortController();
  const onCancelled = () => gone.abort();
  call.on('cancelled', onCancelled);
  const deadline = call.getDeadline();
  try {
    // The key travels to the path's admission (identify, then charge once the prompt is counted).
    const ctx: RequestContext = {
      signal: gone.signal,
      deadline:
        deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined,
      traceparent: metadataValue(call.metadata, TRACEPARENT),
      requestId: metadataValue(call.metadata, 'x-request-id'),
      apiKey: apiKeyOfMetadata(call.metadata),
    };
    const events = open(ctx);
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
