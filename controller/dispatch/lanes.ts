/**
 * The durable request path's Redis side for every deployment: one RequestQueue + StreamLog (the gateway's
 * Lane), one ArrivalSignal, one Dispatcher with its prefix-aware routing and the RouteFeed that shares its
 * decisions with the other replicas, on one shared ioredis connection (blocking reads and the subscriber
 * duplicate it). The controller opens it before it serves and closes it last.
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { Deployment, QueueConfig } from '../config/controller-config.ts';
import type { Lane } from '../gateway/request-path.ts';
import type { RequestTable } from '../gateway/request-table.ts';
import type { WorkerClients } from '../gateway/worker-clients.ts';
import { ArrivalSignal } from '../queue/arrival-signal.ts';
import { queueBase } from '../queue/keys.ts';
import { LiveFeed } from '../queue/live-feed.ts';
import { RequestQueue } from '../queue/request-queue.ts';
import { StreamLog } from '../queue/stream-log.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { DispatchRouting } from './dispatch-routing.ts';
import { Dispatcher } from './dispatcher.ts';
import { kvCapacityBlocks } from './kv-capacity.ts';
import type { Encode } from './prompt-blocks.ts';
import { RouteFeed } from './route-feed.ts';
import { serviceTimeMs } from './service-time.ts';

export interface LanesOptions {
  redisUrl: string;
  /** Key prefix (tests give each controller set their own). Default 'corral'. */
  prefix?: string;
  deployments: readonly Deployment[];
  queue: QueueConfig;
  registry: WorkerRegistry;
  requests: RequestTable;
  workers: WorkerClients;
  clock: Clock;
  random: () => number;
  log: Logger;
  /** The tokenizer thread's encode (prompt block hashes of text prompts); absent: text is routed by load. */
  encode?: Encode;
}

export interface Lanes {
  readonly lanes: ReadonlyMap<string, Lane>;
  /** This controller's name in the queues' leases. */
  readonly owner: string;
  readonly dispatchers: readonly Dispatcher[];
  /** Picks by reason kind since start, per deployment (Control.Status). */
  pickReasons(deployment: string): ReadonlyMap<string, number>;
  start(): void;
  /** A heartbeat or registry change: look for room again, and end runs whose group left routing. */
  onRegistryChange(): void;
  /** Stops dispatching (runs get graceMs, then go back to the queue), closes Redis. */
  close(graceMs: number): Promise<void>;
}

export async function openLanes(o: LanesOptions): Promise<Lanes> {
  // maxRetriesPerRequest null: a Redis restart makes commands wait for the reconnection instead of failing
  // requests that are already safe in the AOF.
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  // ioredis reconnects by itself; a restart of Redis is worth one line, not an unhandled 'error' event.
  redis.on('error', (e: Error) => o.log.warn('redis connection error; reconnecting', { error: e.message }));
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    redis.disconnect();
    throw new Error(`cannot reach redis at ${o.redisUrl}: ${(e as Error).message}`, { cause: e });
  }
  const owner = `${hostname()}-${process.pid}-${Math.floor(o.random() * 2 ** 32).toString(36)}`;
  const prefix = o.prefix ?? 'corral';
  const lanes = new Map<string, Lane>();
  const signals: ArrivalSignal[] = [];
  const dispatchers: Dispatcher[] = [];
  const feeds: RouteFeed[] = [];
  const routings = new Map<string, DispatchRouting>();
  try {
    for (const d of o.deployments) {
      // The queue asks its dispatcher (made below, from the queue) for the ready groups' sequences.
      let dispatcher: Dispatcher | undefined;
      const queue = new RequestQueue({
        redis,
        clock: o.clock,
        deployment: d.name,
        prefix,
        leaseMs: o.queue.leaseMs,
        maxAttempts: o.queue.maxAttempts,
        shed: {
          maxWaitMs: o.queue.maxWaitMs,
          maxDepth: o.queue.maxDepth,
          serviceMs: serviceTimeMs(d, o.queue.serviceMs),
        },
        slots: () => dispatcher?.readySlots() ?? 0,
      });
      const log = new StreamLog({ redis, deployment: d.name, prefix });
      const signal = await ArrivalSignal.open(redis, d.name, prefix);
      signals.push(signal);
      const live = new LiveFeed();
      let feed: RouteFeed | undefined;
      const routing = new DispatchRouting({
        deployment: d.name,
        capacityBlocks: () => kvCapacityBlocks(d, o.registry.all()[0]?.inventory.gpus?.type),
        ...(o.encode ? { encode: o.encode } : {}),
        random: o.random,
        logger: o.log.child({ deployment: d.name }),
        share: (decision) => feed?.publish(decision),
      });
      feed = RouteFeed.open({
        redis,
        key: `${queueBase(prefix, d.name)}:routes`,
        owner,
        onDecision: (decision) => routing.observe(decision),
        log: o.log.child({ deployment: d.name }),
      });
      feeds.push(feed);
      routings.set(d.name, routing);
      dispatcher = new Dispatcher({
        deployment: d,
        queue,
        log,
        signal,
        registry: o.registry,
        requests: o.requests,
        workers: o.workers,
        clock: o.clock,
        random: o.random,
        logger: o.log.child({ deployment: d.name }),
        owner,
        noGroupGraceMs: o.queue.noGroupGraceMs,
        maxWaitMs: o.queue.maxWaitMs,
        live,
        routing,
      });
      dispatchers.push(dispatcher);
      // A request queued here goes through this replica's dispatcher: taken in its submit when a group has
      // room, else its loop is woken at once (other replicas hear the queue's PUBLISH).
      const local = dispatcher;
      lanes.set(d.name, { queue, log, live, wake: () => local.wake(), submit: (req) => local.submit(req) });
    }
  } catch (e) {
    await Promise.all(feeds.map((f) => f.close()));
    await Promise.all(signals.map((s) => s.close()));
    redis.disconnect();
    throw e;
  }
  return {
    lanes,
    owner,
    dispatchers,
    pickReasons: (deployment) => routings.get(deployment)?.pickReasons ?? new Map(),
    start: () => {
      for (const d of dispatchers) d.start();
    },
    onRegistryChange: () => {
      for (const d of dispatchers) {
        d.checkGroups();
        d.wake();
      }
    },
    close: async (graceMs) => {
      await Promise.all(dispatchers.map((d) => d.stop(graceMs)));
      await Promise.all(feeds.map((f) => f.close()));
      await Promise.all(signals.map((s) => s.close()));
      for (const lane of lanes.values()) lane.log.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
