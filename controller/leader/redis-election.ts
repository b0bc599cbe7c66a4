/**
 * The group reconciler's election on the controller's Redis: its own connection (a blocked queue command must not
 * hold up a renewal), commands that fail after renewMs instead of waiting in ioredis's offline queue (a leader
 * cut off from Redis must see its renewals fail, so its term runs out on time), and the lease under
 * `<prefix>:leader:groups`.
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import { LeaderElector } from './leader-elector.ts';
import { DEFAULT_LEASE_POLICY, type LeasePolicy } from './lease-decision.ts';
import { RedisLeaseStore } from './redis-lease.ts';

export interface RedisElection {
  readonly elector: LeaderElector;
  /** Releases the lease if held (a follower takes over at its next attempt) and closes the connection. */
  close(): Promise<void>;
}

/** A replica's default id: the host (in Kubernetes the pod name) and the process, unique among replicas. */
export function defaultReplicaId(): string {
  return `${hostname()}:${process.pid}`;
}

export function startRedisElection(options: {
  url: string;
  prefix: string;
  clock: Clock;
  log: Logger;
  id?: string;
  policy?: LeasePolicy;
}): RedisElection {
  const policy = options.policy ?? DEFAULT_LEASE_POLICY;
  const redis = new Redis(options.url, {
    commandTimeout: policy.renewMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
  });
  // Reconnection is ioredis's job; a refused connection shows up as failed renewals, logged by the elector.
  redis.on('error', () => undefined);
  const elector = new LeaderElector({
    id: options.id ?? defaultReplicaId(),
    store: new RedisLeaseStore(redis, `${options.prefix}:leader:groups`),
    policy,
    clock: options.clock,
    log: options.log,
  });
  elector.start();
  // The first attempt may run before the connection is up (no offline queue): try again as soon as it is.
  redis.on('ready', () => void elector.tick());
  return {
    elector,
    async close() {
      await elector.stop();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
