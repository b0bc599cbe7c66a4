/**
 * The local cluster: a Redis (the queue's and stream logs' store), one or more controller replicas (each with its
 * own gRPC and HTTP ports; they elect the group reconciler's leader through Redis) and several workers presenting
 * simulated GPUs, each registered with every replica, all child processes of the caller, on loopback. `corral up` runs it for people; the e2e tests run exactly the same code.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_TOKEN_ENV, newClusterToken } from '../common/cluster-token.ts';
import type { TenancyOptions } from '../controller/tenancy/tenant-config.ts';
import type { ClusterStatus } from '../proto/gen/corral/v1/control.ts';
import { controlClient, fetchStatus } from './clients.ts';
import { singleTenant } from './local-api-key.ts';
import { ManagedProcess } from './managed-process.ts';
import { type AppendFsync, type RedisServer, startRedisServer } from './redis-server.ts';

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

export interface WorkerSpec {
  nodeName: string;
  gpus: number;
  gpuType: string;
  labels?: Record<string, string>;
}

export interface LocalClusterOptions {
  /** State directory: the controller config, Redis's AOF (redis/) and one log file per process. */
  dir: string;
  /** Controller config (YAML or JSON text); its `listen` is overridden by controllerListen. */
  config: string;
  /** Controller replicas (default 1). Replica i listens on controllerListen's and httpListen's port + i. */
  controllers?: number;
  controllerListen?: string;
  /** Where the OpenAI-compatible HTTP API listens (default: a free loopback port). */
  httpListen?: string;
  workers: WorkerSpec[];
  /** Redis durability: everysec (default) or always (see redis-server.ts for the trade-off). */
  appendfsync?: AppendFsync;
  /** Extra environment for every process (e.g. CORRAL_LOG_LEVEL). */
  env?: NodeJS.ProcessEnv;
  onProgress?: (message: string) => void;
  /**
   * Who may call the cluster: `apiKey` alone makes one tenant (`local`) owning it; `tenants` (digests only)
   * replaces that for tests of several tenants, and `apiKey` is then the key the cluster's own calls (status,
   * readiness) present. Absent: the API is open (the controller warns).
   */
  auth?: { apiKey: string; tenants?: TenancyOptions };
}

const TSX = ['--import', 'tsx'];

/** One controller replica: its process and where it serves (kept when it is restarted). */
export interface ControllerReplica {
  readonly name: string;
  process: ManagedProcess;
  grpc: string;
  http: string;
}

export class LocalCluster {
  readonly workers = new Map<string, ManagedProcess>();
  readonly controllers: ControllerReplica[] = [];
  private redisServer: RedisServer | undefined;
  /** The worker protocol's secret, fresh per cluster: workers and controllers prove it to each other. */
  private readonly clusterToken = newClusterToken();

  private constructor(private readonly options: LocalClusterOptions) {}

  /** Starts Redis, the controller, then the workers; resolves once every process listens (engines may still load). */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
    try {
      cluster.progress('starting redis');
      cluster.redisServer = await startRedisServer({
        dir: join(options.dir, 'redis'),
        ...(options.appendfsync && { appendfsync: options.appendfsync }),
      });
      for (let i = 0; i < (options.controllers ?? 1); i++) await cluster.startController(i);
      await Promise.all(options.workers.map((w) => cluster.startWorker(w)));
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** The first controller replica's gRPC address. */
  get grpcAddress(): string {
    return this.replica(0).grpc;
  }

  /** host:port of the first controller replica's OpenAI-compatible HTTP API. */
  get httpAddress(): string {
    return this.replica(0).http;
  }

  /** The key the cluster's clients present (undefined when the API is open). */
  get apiKey(): string | undefined {
    return this.options.auth?.apiKey;
  }

  /** The cluster's Redis (restart() it to test recovery from its AOF). */
  get redis(): RedisServer {
    if (!this.redisServer) throw new Error('redis not started');
    return this.redisServer;
  }

  /** The first controller replica's process. */
  get controller(): ManagedProcess {
    return this.replica(0).process;
  }

  replica(i: number): ControllerReplica {
    const r = this.controllers[i];
    if (!r) throw new Error(`no controller replica ${i}`);
    return r;
  }

  /** The gRPC address of every controller replica: what each worker registers with. */
  get controllerAddresses(): string[] {
    return this.controllers.map((c) => c.grpc);
  }

  /**
   * Starts controller replica i, or restarts it on the ports it had (a replacement pod behind the same name):
   * the workers know the replicas by address and reconnect to it there.
   */
  async startController(i: number): Promise<ControllerReplica> {
    const { dir, config } = this.options;
    const previous = this.controllers[i];
    if (previous && !previous.process.hasExited) throw new Error(`${previous.name} is still running`);
    const grpcListen = previous?.grpc ?? offsetPort(this.options.controllerListen ?? '127.0.0.1:0', i);
    const httpListen = previous?.http ?? offsetPort(this.options.httpListen ?? '127.0.0.1:0', i);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const configPath = join(dir, 'controller.yaml');
    writeFileSync(configPath, config);
    const tenantArgs: string[] = [];
    if (this.options.auth) {
      const { apiKey, tenants = singleTenant([apiKey]) } = this.options.auth;
      const tenantsPath = join(dir, 'tenants.yaml');
      // Digests only, but still who may call and how much: owner-only like the key file.
      writeFileSync(tenantsPath, `${JSON.stringify(tenants, null, 2)}\n`, { mode: 0o600 });
      tenantArgs.push('--tenants', tenantsPath);
    }
    const name = `controller-${i + 1}`;
    this.progress(`starting ${name}`);
    const child = new ManagedProcess(
      name,
      process.execPath,
      [
        ...TSX,
        join(REPO_ROOT, 'controller/main.ts'),
        '--config',
        configPath,
        '--listen',
        grpcListen,
        '--http-listen',
        httpListen,
        '--redis',
        this.redis.url,
        ...tenantArgs,
      ],
      { env: this.env(), logFile: join(dir, 'logs', `${name}.log`), cwd: REPO_ROOT },
    );
    const endpoints = await child.waitListening(30_000);
    if (!endpoints.grpc) throw new Error(`${name} reported no gRPC address`);
    const replica: ControllerReplica = {
      name,
      process: child,
      grpc: endpoints.grpc,
      http: endpoints.http ?? '',
    };
    this.controllers[i] = replica;
    this.progress(`${name} listening on ${replica.grpc} (gRPC) and ${replica.http} (HTTP)`);
    return replica;
  }

  /** Starts (or restarts) the worker of one node. */
  async startWorker(spec: WorkerSpec): Promise<ManagedProcess> {
    const args = [
      ...TSX,
      join(REPO_ROOT, 'worker/main.ts'),
      '--controller',
      this.controllerAddresses.join(','),
      '--listen',
      '127.0.0.1:0',
      '--node-name',
      spec.nodeName,
      '--worker-id',
      spec.nodeName,
      '--gpus',
      String(spec.gpus),
      '--gpu-type',
      spec.gpuType,
    ];
    for (const [k, v] of Object.entries(spec.labels ?? {})) args.push('--label', `${k}=${v}`);
    this.progress(`starting worker ${spec.nodeName} (${spec.gpus}x ${spec.gpuType}, simulated)`);
    const worker = new ManagedProcess(`worker ${spec.nodeName}`, process.execPath, args, {
      env: this.env(),
      logFile: join(this.options.dir, 'logs', `worker-${spec.nodeName}.log`),
      cwd: REPO_ROOT,
    });
    this.workers.set(spec.nodeName, worker);
    await worker.waitListening(30_000);
    return worker;
  }

  worker(nodeName: string): ManagedProcess {
    const w = this.workers.get(nodeName);
    if (!w) throw new Error(`no worker ${nodeName}`);
    return w;
  }

  /** Control.Status from replica i, or from the first running replica that answers (one may be down). */
  async status(timeoutMs = 5000, i?: number): Promise<ClusterStatus> {
    const order = i === undefined ? this.controllers.filter((c) => !c.process.hasExited) : [this.replica(i)];
    let last: unknown = new Error('no controller replica is running');
    for (const c of order) {
      const client = controlClient(c.grpc, this.apiKey);
      try {
        return await fetchStatus(client, timeoutMs);
      } catch (e) {
        last = e;
      } finally {
        client.close();
      }
    }
    throw last;
  }

  /** Polls until every deployment has all its replicas ready, reporting progress as it changes. */
  async waitReady(timeoutMs: number): Promise<ClusterStatus> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const status = await this.status().catch(() => undefined);
      if (status) {
        const line = status.deployments
          .map((d) => `${d.name}: ${d.readyReplicas}/${d.desiredReplicas} replicas ready`)
          .join(', ');
        if (line !== last) this.progress(line);
        last = line;
        const ready = status.deployments.length > 0;
        if (ready && status.deployments.every((d) => d.readyReplicas >= d.desiredReplicas)) return status;
      }
      if (Date.now() > deadline) throw new Error(`cluster not ready within ${timeoutMs} ms (${last})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Stops workers first (they drain and stop their engines), then the controller, then Redis. */
  async stop(graceMs = 10_000): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stop(graceMs)));
    await Promise.all(this.controllers.map((c) => c.process.stop(graceMs)));
    await this.redisServer?.stop();
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, [CLUSTER_TOKEN_ENV]: this.clusterToken, ...this.options.env };
  }

  private progress(message: string): void {
    this.options.onProgress?.(message);
  }
}

/** `host:port` with port + i; port 0 (any free port) stays 0. */
function offsetPort(listen: string, i: number): string {
  const colon = listen.lastIndexOf(':');
  const port = Number(listen.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) throw new Error(`bad listen address ${listen}`);
  return port === 0 ? listen : `${listen.slice(0, colon)}:${port + i}`;
}
