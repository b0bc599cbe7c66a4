/**
 * gRPC clients of the controller's public services, as the CLI and the e2e tests use them. With an API key,
 * every call carries `authorization: Bearer <key>` (an interceptor adds it, so no call site can forget it).
 */
import {
  type CallOptions,
  type ClientOptions,
  credentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { type ClusterStatus, ControlClient } from '../proto/gen/corral/v1/control.ts';
import { InferenceClient } from '../proto/gen/corral/v1/inference.ts';

export function inferenceClient(address: string, apiKey?: string): InferenceClient {
  return new InferenceClient(address, credentials.createInsecure(), withApiKey(apiKey));
}

export function controlClient(address: string, apiKey?: string): ControlClient {
  return new ControlClient(address, credentials.createInsecure(), withApiKey(apiKey));
}

function withApiKey(apiKey: string | undefined): Partial<ClientOptions> {
  if (!apiKey) return {};
  const bearer: Interceptor = (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${apiKey}`);
        next(metadata, listener);
      },
    });
  return { interceptors: [bearer] };
}

type UnaryCall<Req, Res> = (
  req: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

/** A unary call with a deadline, as a promise. */
export function unary<Req, Res>(call: UnaryCall<Req, Res>, req: Req, timeoutMs = 5000): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export function fetchStatus(client: ControlClient, timeoutMs = 5000): Promise<ClusterStatus> {
  return unary(client.status.bind(client), {}, timeoutMs);
}
