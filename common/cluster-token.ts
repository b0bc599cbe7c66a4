/**
 * The shared secret of the worker protocol. Without it anyone who reaches a controller's port could register a
 * fake worker and be sent tenants' prompts, and anyone who reaches a worker's port could generate around
 * admission. Both sides read it from CORRAL_CLUSTER_TOKEN (a Kubernetes Secret as an env var; never a flag,
 * which `ps` shows). Every worker-protocol call carries it in metadata; the serving side refuses a missing or
 * different one with UNAUTHENTICATED. Health and reflection stay open: probes and grpcurl carry no secret.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  InterceptingCall,
  type Interceptor,
  ServerInterceptingCall,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
} from '@grpc/grpc-js';

export const CLUSTER_TOKEN_ENV = 'CORRAL_CLUSTER_TOKEN';
const HEADER = 'x-corral-cluster-token';

/** The token from the environment; undefined (protocol open) when unset or empty. */
export function clusterTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = env[CLUSTER_TOKEN_ENV]?.trim();
  return token ? token : undefined;
}

/** A fresh token for a cluster that makes its own (the local cluster). */
export function newClusterToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Client side: every call on a channel built with this interceptor carries the token. */
export function sendClusterToken(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set(HEADER, token);
        next(metadata, listener);
      },
    });
}

/**
 * Server side: calls to the named services (e.g. 'corral.v1.Registry') must carry the token; other services
 * on the same server pass untouched.
 */
export function requireClusterToken(token: string, services: readonly string[]): ServerInterceptor {
  const expected = digest(token);
  const guarded = services.map((s) => `/${s}/`);
  return (method, call) => {
    if (!guarded.some((prefix) => method.path.startsWith(prefix))) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, accept) => {
              const given = metadata.get(HEADER)[0];
              if (typeof given === 'string' && timingSafeEqual(digest(given), expected)) accept(metadata);
              else
                call.sendStatus({
                  code: status.UNAUTHENTICATED,
                  details:
                    given === undefined
                      ? `${method.path} needs the cluster token (set ${CLUSTER_TOKEN_ENV} on the caller)`
                      : `${method.path}: the cluster token does not match this server's ${CLUSTER_TOKEN_ENV}`,
                });
            })
            .build(),
        );
      },
    });
  };
}

// Equal-length digests let timingSafeEqual compare tokens of any length without leaking it.
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
