/**
 * Starts a gRPC server with corral's services plus the two every operator tool expects: the standard health
 * service (grpc.health.v1, for Kubernetes gRPC probes and grpc-health-probe) and server reflection (grpcurl).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';

const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', 'proto');

export interface ServiceBinding {
  /** Full name for health status, e.g. corral.v1.Inference */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface RunningGrpcServer {
  readonly server: Server;
  readonly port: number;
  readonly address: string;
  setServing(serving: boolean): void;
  /** Graceful shutdown; calls still running after graceMs are cancelled. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Off: channelz, grpc-js's per-channel, per-socket and per-call statistics (on by default), which only a
 * channelz service reads and corral serves none; they cost every call its bookkeeping on the request path.
 */
export const NO_CHANNELZ = { 'grpc.enable_channelz': 0 } as const;

/** Keepalive settings that let a peer notice a dead connection in seconds, not at TCP's default minutes. */
export const KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
} as const;

export async function startGrpcServer(options: {
  host: string;
  port: number;
  services: ServiceBinding[];
  protoFiles: string[]; // relative to proto/, for reflection
  interceptors?: ServerInterceptor[];
}): Promise<RunningGrpcServer> {
  const server = new Server({
    ...KEEPALIVE_OPTIONS,
    ...NO_CHANNELZ,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    interceptors: options.interceptors ?? [],
  });
  for (const s of options.services) server.addService(s.definition, s.implementation);

  const statuses: Record<string, 'SERVING' | 'NOT_SERVING'> = { '': 'NOT_SERVING' };
  for (const s of options.services) statuses[s.name] = 'NOT_SERVING';
  const health = new HealthImplementation(statuses);
  health.addToServer(server);

  const pkg = loadSync(options.protoFiles, { includeDirs: [PROTO_ROOT], keepCase: true });
  new ReflectionService(pkg).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );

  const setServing = (serving: boolean) => {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', status);
    for (const s of options.services) health.setStatus(s.name, status);
  };

  return {
    server,
    port,
    address: `${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    setServing,
    close: (graceMs = 5000) =>
      new Promise<void>((resolve) => {
        setServing(false);
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
