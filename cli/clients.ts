/** gRPC clients of the controller's public services, as the CLI and the e2e tests use them. */
import { type CallOptions, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { type ClusterStatus, ControlClient } from '../proto/gen/corral/v1/control.ts';
import { InferenceClient } from '../proto/gen/corral/v1/inference.ts';

export function inferenceClient(address: string): InferenceClient {
  return new InferenceClient(address, credentials.createInsecure());
}

export function controlClient(address: string): ControlClient {
  return new ControlClient(address, credentials.createInsecure());
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
