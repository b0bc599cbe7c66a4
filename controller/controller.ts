/**
 * The controller process's parts, wired: worker registry + Registry service, group applier, gateway (Inference),
 * Control, on one gRPC server with health and reflection. main.ts adds flags and signals; integration tests start
 * it in-process on 127.0.0.1:0.
 */
import { type Clock, systemClock } from '../common/clock.ts';
import { UnavailableError } from '../common/errors.ts';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.ts';
import type { Logger } from '../common/log.ts';
import { ControlService } from '../proto/gen/corral/v1/control.ts';
import { InferenceService } from '../proto/gen/corral/v1/inference.ts';
import { RegistryService } from '../proto/gen/corral/v1/registry.ts';
import { type Admission, openAdmission } from './admission/admission.ts';
import type { ControllerConfig } from './config/controller-config.ts';
import { controlService } from './control/control-service.ts';
import { inferenceService } from './gateway/inference-service.ts';
import { createRequestPath, type RequestPath } from './gateway/request-path.ts';
import { RequestTable } from './gateway/request-table.ts';
import { ThreadTokenCounter, type TokenCounter } from './gateway/token-counter.ts';
import { WorkerClients } from './gateway/worker-clients.ts';
import { GroupApplier } from './launcher/group-applier.ts';
import { registryService } from './registry/registry-service.ts';
import { WorkerRegistry } from './registry/worker-registry.ts';

export interface ControllerDeps {
  log: Logger;
  clock?: Clock;
  random?: () => number;
  tokens?: TokenCounter;
  /** Who may ask, and how much (admission/). Default: open, every caller is the tenant `default`. */
  admission?: Admission;
}

export interface RunningController {
  readonly address: string;
  readonly registry: WorkerRegistry;
  readonly requests: RequestTable;
  /** The request path both front doors share (gRPC Inference, OpenAI-compatible HTTP). */
  readonly path: RequestPath;
  /** The admission both front doors authenticate with (the HTTP server's /v1/models uses it too). */
  readonly admission: Admission;
  /** Stops accepting, ends running requests after graceMs, drops worker streams, closes everything. */
  stop(graceMs?: number): Promise<void>;
}

export async function startController(
  config: ControllerConfig,
  deps: ControllerDeps,
): Promise<RunningController> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  const registry = new WorkerRegistry({
    workerTimeoutMs: config.workerTimeoutMs,
    clock,
    log: log.child({ component: 'registry' }),
  });
  const requests = new RequestTable();
  const workers = new WorkerClients();
  const tokens = deps.tokens ?? new ThreadTokenCounter();
  const admission = deps.admission ?? openAdmission();
  const path = createRequestPath({
    deployments: config.deployments,
    registry,
    requests,
    workers,
    tokens,
    clock,
    random: deps.random ?? Math.random,
    log: log.child({ component: 'gateway' }),
  });
  const groups = new GroupApplier({
    deployments: config.deployments,
    registry,
    groups: config.groups,
    clock,
    log: log.child({ component: 'groups' }),
    inFlight: (engineId) => requests.outstanding(engineId),
  });

  registry.onEvent((e) => {
    if (e.t !== 'lost') return;
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
          implementation: controlService({
            deployments: config.deployments,
            registry,
            requests,
            clock,
            groups: () => groups.records(),
          }),
        },
      ],
    });
  } catch (e) {
    await tokens.close();
    throw e;
  }
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
      groups.stop();
      server.setServing(false);
      const closed = server.close(graceMs);
      // Register streams never end on their own; end them so the graceful shutdown is not held up by them.
      registry.closeAll('controller shutting down');
      const ended = await waitIdle(requests, graceMs);
      if (!ended) requests.abortAll(new UnavailableError('controller shutting down'));
      await closed;
      workers.closeAll();
      await tokens.close();
      log.info('stopped');
    })();
    return stopping;
  };
  return { address: server.address, registry, requests, path, admission, stop };
}

async function waitIdle(requests: RequestTable, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs;
  while (requests.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return requests.size === 0;
}
