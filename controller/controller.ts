/**
 * The controller process's parts, wired: worker registry + Registry service, group applier, the durable request
 * path (gateway -> Redis queue -> dispatcher -> stream log, controller/dispatch/), Control, on one gRPC server
 * with health and reflection. Redis is required: accepted requests live there, not in this process. main.ts adds flags and signals; integration tests start
 * it in-process on 127.0.0.1:0.
 */
import { type Clock, systemClock } from '../common/clock.ts';
import { requireClusterToken } from '../common/cluster-token.ts';
import { UnavailableError, ValidationError } from '../common/errors.ts';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.ts';
import type { Logger } from '../common/log.ts';
import { ControlService } from '../proto/gen/corral/v1/control.ts';
import { InferenceService } from '../proto/gen/corral/v1/inference.ts';
import { RegistryService } from '../proto/gen/corral/v1/registry.ts';
import { type Admission, openAdmission } from './admission/admission.ts';
import { apiKeyOfMetadata } from './admission/api-key.ts';
import { type BatchApi, type Batches, openBatches } from './batch/batch-service.ts';
import type { ControllerConfig } from './config/controller-config.ts';
import { controlService } from './control/control-service.ts';
import { type Lanes, openLanes } from './dispatch/lanes.ts';
import { inferenceService } from './gateway/inference-service.ts';
import { createRequestPath, type RequestPath } from './gateway/request-path.ts';
import { RequestTable } from './gateway/request-table.ts';
import { ThreadTokenCounter, type TokenCounter } from './gateway/token-counter.ts';
import { WorkerClients } from './gateway/worker-clients.ts';
import { GroupApplier } from './launcher/group-applier.ts';
import type { Leadership } from './leader/leader-elector.ts';
import { type RedisElection, startRedisElection } from './leader/redis-election.ts';
import { registryService } from './registry/registry-service.ts';
import { WorkerRegistry } from './registry/worker-registry.ts';

export interface ControllerDeps {
  log: Logger;
  clock?: Clock;
  random?: () => number;
  tokens?: TokenCounter;
  /** Who may ask, and how much (admission/). Default: open, every caller is the tenant `default`. */
  admission?: Admission;
  /** Redis key prefix of the queues and stream logs. Default 'corral'. Tests give each controller set theirs. */
  redisPrefix?: string;
  /** Who leads the group reconciler. Default: an election on the controller's Redis among the replicas that
   * share the prefix; this replica's id is replicaId (default host:pid). */
  leadership?: Leadership;
  replicaId?: string;
  /** The worker protocol's shared secret (common/cluster-token.ts). Absent: Registry is open to any caller. */
  clusterToken?: string;
}

export interface RunningController {
  readonly address: string;
  readonly registry: WorkerRegistry;
  readonly requests: RequestTable;
  /** The request path both front doors share (gRPC Inference, OpenAI-compatible HTTP). */
  readonly path: RequestPath;
  /** The admission both front doors authenticate with (the HTTP server's /v1/models uses it too). */
  readonly admission: Admission;
  /** The deployments' queues, stream logs and dispatchers. */
  readonly lanes: Lanes;
  /** Offline batches (the HTTP server's /v1/files and /v1/batches). */
  readonly batches: BatchApi;
  /** Stops accepting, ends running requests after graceMs, drops worker streams, closes everything. */
  stop(graceMs?: number): Promise<void>;
}

export async function startController(
  config: ControllerConfig,
  deps: ControllerDeps,
): Promise<RunningController> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  if (!config.redis)
    throw new ValidationError('controller config', [
      {
        path: 'redis',
        message: 'is required (the queue and stream logs live there): set redis: URL or --redis URL',
      },
    ]);
  const registry = new WorkerRegistry({
    workerTimeoutMs: config.workerTimeoutMs,
    clock,
    log: log.child({ component: 'registry' }),
  });
  const requests = new RequestTable();
  const workers = new WorkerClients(deps.clusterToken);
  const tokens = deps.tokens ?? new ThreadTokenCounter();
  const admission = deps.admission ?? openAdmission();
  const random = deps.random ?? Math.random;
  const encode = tokens.encode?.bind(tokens);
  let lanes: Lanes;
  try {
    lanes = await openLanes({
      redisUrl: config.redis,
      ...(deps.redisPrefix ? { prefix: deps.redisPrefix } : {}),
      deployments: config.deployments,
      queue: config.queue,
      registry,
      requests,
      workers,
      clock,
      random,
      log: log.child({ component: 'dispatch' }),
      ...(encode ? { encode } : {}),
    });
  } catch (e) {
    await tokens.close();
    throw e;
  }
  const path = createRequestPath({
    deployments: config.deployments,
    registry,
    lanes: lanes.lanes,
    admission,
    tokens,
    clock,
    random,
    log: log.child({ component: 'gateway' }),
    detachGraceMs: config.queue.detachGraceMs,
  });
  // Offline batches: their lines go through the same admission and queues, at priority class batch.
  let batches: Batches;
  try {
    batches = await openBatches({
      redisUrl: config.redis,
      prefix: deps.redisPrefix ?? 'corral',
      config: config.batch,
      deployments: config.deployments,
      lanes: lanes.lanes,
      gateway: { registry, admission, tokens, clock, random },
      clock,
      log: log.child({ component: 'batch' }),
    });
  } catch (e) {
    await lanes.close(0);
    await tokens.close();
    throw e;
  }
  // Every replica registers every worker and routes; only the lease holder forms and heals groups.
  let election: RedisElection | undefined;
  let leadership: Leadership;
  if (deps.leadership) leadership = deps.leadership;
  else {
    election = startRedisElection({
      url: config.redis,
      prefix: deps.redisPrefix ?? 'corral',
      clock,
      log: log.child({ component: 'leader' }),
      ...(deps.replicaId ? { id: deps.replicaId } : {}),
    });
    leadership = election.elector;
  }
  const groups = new GroupApplier({
    deployments: config.deployments,
    registry,
    groups: config.groups,
    clock,
    log: log.child({ component: 'groups' }),
    inFlight: (engineId) => requests.outstanding(engineId),
    leadership,
    // Workers of the previous leader's groups need a moment to register with a replica that just started.
    settleMs: config.workerTimeoutMs,
  });

  registry.onEvent((e) => {
    lanes.onRegistryChange();
    if (e.t !== 'lost') return;
    // Their runs go back to the queue and continue on another group from their stream logs.
    const n = requests.abortWorker(
      e.workerId,
      new UnavailableError(`worker ${e.workerId} lost: ${e.reason}`),
    );
    if (n > 0) log.warn('ended requests of a lost worker', { workerId: e.workerId, requests: n });
  });

  let server: RunningGrpcServer;
  try {
    server = await startGrpcServer({
      host: config.listen.host,
      port: config.listen.port,
      protoFiles: ['corral/v1/inference.proto', 'corral/v1/registry.proto', 'corral/v1/control.proto'],
      interceptors: deps.clusterToken ? [requireClusterToken(deps.clusterToken, ['corral.v1.Registry'])] : [],
      services: [
        {
          name: 'corral.v1.Inference',
          definition: InferenceService,
          implementation: inferenceService(path, admission),
        },
        {
          name: 'corral.v1.Registry',
          definition: RegistryService,
          implementation: registryService({
            registry,
            heartbeatIntervalMs: config.heartbeatIntervalMs,
            log: log.child({ component: 'registry' }),
          }),
        },
        {
          name: 'corral.v1.Control',
          definition: ControlService,
          implementation: controlService(
            {
              deployments: config.deployments,
              registry,
              requests,
              clock,
              groups: () => groups.records(),
              pickReasons: (deployment) => lanes.pickReasons(deployment),
              leadership,
            },
            (md) => admission.identify(apiKeyOfMetadata(md), undefined),
          ),
        },
      ],
    });
  } catch (e) {
    await election?.close();
    await batches.close();
    await lanes.close(0);
    await tokens.close();
    throw e;
  }
  lanes.start();
  batches.start();
  // A silent worker is found by this sweep; the tick bounds how late past workerTimeoutMs that happens.
  const sweepMs = Math.max(50, Math.min(500, Math.floor(config.workerTimeoutMs / 10)));
  const sweeper = setInterval(() => registry.sweep(), sweepMs);
  // Heartbeats and stream ends drive the reconciler; the tick covers backoffs and start timeouts expiring.
  groups.start(Math.min(config.heartbeatIntervalMs, 500));
  server.setServing(true);

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5000) => {
    stopping ??= (async () => {
      log.info('stopping', { running: requests.size });
      clearInterval(sweeper);
      // Hand the lease over first: a follower takes over the groups at its next attempt, not after the lease.
      await election?.close();
      groups.stop();
      server.setServing(false);
      const closed = server.close(graceMs);
      // Running requests get the grace to finish; the rest go back to the queue for another controller (or
      // this one after a restart) to continue from their stream logs.
      // Batches driven here are handed to another replica (their state is in Redis) before the queues close.
      await batches.close();
      await lanes.close(graceMs);
      // Register streams never end on their own; end them so the graceful shutdown is not held up by them.
      registry.closeAll('controller shutting down');
      // Clients still streaming can Resume on another controller.
      path.closeStreams('controller shutting down; resume the request on another controller');
      await closed;
      workers.closeAll();
      await tokens.close();
      log.info('stopped');
    })();
    return stopping;
  };
  return { address: server.address, registry, requests, path, admission, lanes, batches: batches.api, stop };
}
