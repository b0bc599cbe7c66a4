/**
 * The agent of one GPU node: owns the engine supervisors (one per engine id), serves the Worker gRPC service,
 * keeps one Registry stream to every controller replica (each reconnects with its own backoff; heartbeats go to
 * all, so every replica can route to every group), fences directives by the leader's epoch, and drains on SIGTERM. Wiring and policy only; the engine
 * lifecycle lives in worker/engine/supervisor.ts and the wire protocol in registry-connection.ts.
 */
import { lookup } from 'node:dns/promises';
import { credentials } from '@grpc/grpc-js';
import { requireClusterToken, sendClusterToken } from '../../common/cluster-token.ts';
import { KEEPALIVE_OPTIONS, type RunningGrpcServer, startGrpcServer } from '../../common/grpc-server.ts';
import { lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import {
  type ControllerMessage,
  type LaunchEngine,
  RegistryClient,
} from '../../proto/gen/corral/v1/registry.ts';
import { type EngineStatus, type Inventory, WorkerService } from '../../proto/gen/corral/v1/worker.ts';
import type { EngineSpec } from '../engine/launch-command.ts';
import { DEFAULT_RESTART_POLICY } from '../engine/restart-policy.ts';
import { isFinal } from '../engine/state-machine.ts';
import { type EngineDeps, EngineSupervisor, type SupervisorConfig } from '../engine/supervisor.ts';
import type { WorkerConfig } from '../options.ts';
import { type ControllerLink, ControllerSet } from './controller-set.ts';
import { EpochFence } from './epoch-fence.ts';
import { GpuAllocator } from './gpu-allocator.ts';
import { InFlight } from './in-flight.ts';
import { RegistryConnection } from './registry-connection.ts';
import { workerService } from './worker-service.ts';

export const WORKER_VERSION = '0.1.0';
/** How often a dns:/// controller target is looked up again (controller pods come and go). */
const DNS_REFRESH_MS = 5000;

export interface AgentDeps extends EngineDeps {
  /** The worker protocol's shared secret (common/cluster-token.ts): sent to controllers, required of them. */
  clusterToken?: string;
}

export class WorkerAgent {
  private readonly engines = new Map<string, EngineSupervisor>();
  /** Each engine's LaunchEngine as received, to recognise a repeated identical launch. */
  private readonly requested = new Map<string, EngineSpec>();
  /** Launch/stop directives for one engine id run one after another (a replace must stop the old first). */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly inFlight = new InFlight();
  private readonly gpus: GpuAllocator;
  private readonly supervisorConfig: SupervisorConfig;
  private server: RunningGrpcServer | undefined;
  private controllers: ControllerSet | undefined;
  private readonly fence = new EpochFence();
  private draining = false;
  private shutdownPromise: Promise<void> | undefined;
  private address = '';

  constructor(
    readonly config: WorkerConfig,
    private readonly deps: AgentDeps,
  ) {
    this.gpus = new GpuAllocator(config.gpus.count);
    this.supervisorConfig = {
      command: config.engine,
      engineHost: config.engineHost,
      startTimeoutMs: config.engineStartTimeoutMs,
      healthPollMs: 200,
      restart: {
        ...DEFAULT_RESTART_POLICY,
        initialDelayMs: config.restartBackoffMs,
        maxRestarts: config.maxRestarts,
      },
      stopGraceMs: config.engineStopGraceMs,
      logTailLines: 50,
      env: { VLLM_HOST_IP: config.engineHost, ...simulatedGpuEnv(config) },
      unhealthyThreshold: 3,
    };
  }

  /** Starts the Worker service (logs `listening` with its address), then dials the controller. */
  async start(): Promise<{ grpc: string }> {
    const { listen } = this.config;
    this.server = await startGrpcServer({
      host: listen.host,
      port: listen.port,
      protoFiles: ['corral/v1/worker.proto'],
      interceptors: this.deps.clusterToken
        ? [requireClusterToken(this.deps.clusterToken, ['corral.v1.Worker'])]
        : [],
      services: [
        {
          name: 'corral.v1.Worker',
          definition: WorkerService,
          implementation: workerService({
            workerId: this.config.workerId,
            engine: (id) => {
              const e = this.engines.get(id);
              if (!e) return undefined;
              return {
                engineId: id,
                state: e.state.t,
                httpAddress: e.httpAddress,
                servedModel: e.servedModel,
                headless: e.spec.headless,
              };
            },
            engineStatuses: () => this.engineStatuses(),
            inventory: () => this.inventory(),
            inFlight: this.inFlight,
            http: this.deps.http,
            clock: this.deps.clock,
            log: this.deps.log.child({ component: 'worker-service' }),
          }),
        },
      ],
    });
    this.server.setServing(true);
    this.address = this.config.advertise ?? this.server.address;
    this.deps.log.info('listening', { grpc: this.server.address, workerId: this.config.workerId });

    this.controllers = new ControllerSet({
      targets: this.config.controllers,
      resolve: async (host) => {
        // a dual-stack name lists each pod twice (A and AAAA): one stream per pod, or the second is refused
        const all = await lookup(host, { all: true });
        const v4 = all.filter((a) => a.family === 4);
        return (v4.length > 0 ? v4 : all).map((a) => a.address);
      },
      connect: (address) => this.connect(address),
      refreshMs: DNS_REFRESH_MS,
      log: this.deps.log.child({ component: 'registry' }),
    });
    await this.controllers.start();
    return { grpc: this.server.address };
  }

  inventory(): Inventory {
    const c = this.config;
    return {
      workerId: c.workerId,
      nodeName: c.nodeName,
      address: this.address,
      gpus: c.gpus,
      labels: c.labels,
      version: WORKER_VERSION,
      engineHost: c.engineHost,
    };
  }

  engineStatuses(): EngineStatus[] {
    return [...this.engines.values()].map((e) => e.status());
  }

  /** Controller's Drain: refuse new work, say so in heartbeats; engines keep running until stopped. */
  drain(): void {
    if (this.draining) return;
    this.deps.log.info('draining: refusing new Generate calls', { inFlight: this.inFlight.size });
    this.draining = true;
    this.inFlight.close();
    this.heartbeatNow();
  }

  /** SIGTERM: drain, wait for in-flight calls (up to the drain timeout), stop engines, close everything. */
  shutdown(reason: string): Promise<void> {
    this.shutdownPromise ??= this.doShutdown(reason);
    return this.shutdownPromise;
  }

  private async doShutdown(reason: string): Promise<void> {
    this.deps.log.info('shutting down', { reason, inFlight: this.inFlight.size });
    this.drain();
    const idle = await this.inFlight.idle(this.config.drainTimeoutMs);
    if (!idle) {
      this.deps.log.warn('drain timeout passed with requests still in flight; stopping engines anyway', {
        drainTimeoutMs: this.config.drainTimeoutMs,
        inFlight: this.inFlight.size,
      });
    }
    await Promise.all([...this.engines.values()].map((e) => e.stop(`worker shutting down (${reason})`)));
    await this.controllers?.stop();
    await this.server?.close(1000);
    this.deps.log.info('shut down');
  }

  private heartbeatNow(): void {
    this.controllers?.heartbeatNow();
  }

  /** One Registry stream to one controller replica, reconnecting with its own backoff. */
  private connect(controller: string): ControllerLink {
    const client = new RegistryClient(controller, credentials.createInsecure(), {
      ...KEEPALIVE_OPTIONS,
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 5000,
      ...(this.deps.clusterToken ? { interceptors: [sendClusterToken(this.deps.clusterToken)] } : {}),
    });
    const connection = new RegistryConnection({
      open: () => client.register(),
      hello: () => ({ inventory: this.inventory() }),
      refresh: (timeoutMs) => this.scrapeAll(Math.min(2000, timeoutMs)),
      heartbeat: () => ({
        engines: this.engineStatuses(),
        sentAtMs: this.deps.clock.now(),
        draining: this.draining,
      }),
      onDirective: (m) => this.onDirective(m, controller),
      random: this.deps.random,
      log: this.deps.log.child({ component: 'registry', controller }),
      heartbeatMs: this.config.heartbeatMs,
    });
    connection.start();
    return {
      heartbeatNow: () => connection.heartbeatNow(),
      stop: async () => {
        await connection.stop();
        client.close();
      },
    };
  }

  private onDirective(m: ControllerMessage, controller: string): void {
    const msg = m.msg;
    if (msg?.$case === 'welcome' || msg === undefined) return;
    const verdict = this.fence.admit(m.epoch);
    if (!verdict.ok) {
      this.deps.log.warn('directive from a deposed leader ignored', {
        controller,
        directive: msg.$case,
        ...('engineId' in msg.value ? { engineId: msg.value.engineId } : {}),
        epoch: m.epoch ?? 0,
        highestEpoch: verdict.highest,
      });
      return;
    }
    switch (msg?.$case) {
      case 'launch':
        this.serialize(msg.value.engineId, () => this.launch(msg.value));
        break;
      case 'stop': {
        const { engineId, graceMs } = msg.value;
        this.serialize(engineId, async () => {
          const e = this.engines.get(engineId);
          if (!e) {
            this.deps.log.warn('StopEngine for an unknown engine', { engineId });
            return;
          }
          await e.stop('StopEngine from the controller', graceMs > 0 ? graceMs : undefined);
        });
        break;
      }
      case 'drain':
        this.drain();
        break;
    }
  }

  private async launch(l: LaunchEngine): Promise<void> {
    const log = this.deps.log.child({ engineId: l.engineId });
    if (l.engineId === '') {
      log.error('LaunchEngine without engine_id ignored');
      return;
    }
    if (this.draining) {
      log.warn('LaunchEngine ignored: worker is draining');
      return;
    }
    const spec: EngineSpec = {
      engineId: l.engineId,
      model: l.model,
      args: l.args,
      env: l.env,
      gpus: l.gpus,
      headless: l.headless,
      groupMember: l.groupMember ?? false,
    };
    const existing = this.engines.get(l.engineId);
    const asRequested = this.requested.get(l.engineId);
    this.requested.set(l.engineId, { ...spec, env: { ...spec.env } });
    // Compare with what was asked, not with the running spec: the worker adds CUDA_VISIBLE_DEVICES itself.
    if (existing && asRequested && !isFinal(existing.state) && sameSpec(asRequested, spec)) {
      // A controller that reconnects re-sends what it wants; reloading 405B for that would cost minutes.
      log.info('LaunchEngine for an engine already running with the same spec: kept');
      return;
    }
    if (existing) await existing.stop('replaced by a new LaunchEngine');
    if (this.draining) {
      log.warn('LaunchEngine dropped: the worker started draining meanwhile');
      return;
    }
    let gpuProblem: string | undefined;
    if (spec.gpus > 0 && spec.env.CUDA_VISIBLE_DEVICES === undefined) {
      const devices = this.gpus.allocate(spec.engineId, spec.gpus);
      if (devices) spec.env = { ...spec.env, CUDA_VISIBLE_DEVICES: devices.join(',') };
      else
        gpuProblem = `engine ${spec.engineId} needs ${spec.gpus} GPUs; ${this.gpus.free} of ${this.config.gpus.count} are free`;
    }
    const supervisor = new EngineSupervisor(spec, this.supervisorConfig, {
      spawner: this.deps.spawner,
      http: this.deps.http,
      clock: this.deps.clock,
      random: this.deps.random,
      pickPort: this.deps.pickPort,
      log: this.deps.log.child({ component: 'engine' }),
      onChange: (e) => {
        if (isFinal(e.state) && this.engines.get(e.spec.engineId) === e) this.gpus.release(e.spec.engineId);
        this.heartbeatNow();
      },
    });
    this.engines.set(l.engineId, supervisor);
    if (gpuProblem) supervisor.failWithoutStarting(gpuProblem);
    else supervisor.start();
  }

  private serialize(engineId: string, task: () => Promise<void>): void {
    const prev = this.chains.get(engineId) ?? Promise.resolve();
    const next = prev.then(task).catch((e: unknown) => {
      this.deps.log.error('engine directive failed', { engineId, error: e instanceof Error ? e : String(e) });
    });
    this.chains.set(engineId, next);
  }

  private async scrapeAll(timeoutMs: number): Promise<void> {
    await Promise.all([...this.engines.values()].map((e) => e.scrape(timeoutMs)));
  }
}

function sameSpec(a: EngineSpec, b: EngineSpec): boolean {
  return (
    a.model === b.model &&
    a.gpus === b.gpus &&
    a.headless === b.headless &&
    a.groupMember === b.groupMember &&
    JSON.stringify(a.args) === JSON.stringify(b.args) &&
    JSON.stringify(Object.entries(a.env).sort()) === JSON.stringify(Object.entries(b.env).sort())
  );
}

/**
 * The engine simulator sizes its KV cache from the GPU it runs on (common/hardware), so a simulated node tells it
 * its GPU type when the catalog knows it; a real vLLM reads the device itself.
 */
function simulatedGpuEnv(config: WorkerConfig): Record<string, string> {
  if (config.engine.kind !== 'sim' || lookupGpu(config.gpus.type) === null) return {};
  return { CORRAL_SIM_GPU_TYPE: config.gpus.type };
}
