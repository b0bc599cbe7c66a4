/**
 * The local cluster: a Redis (the queue's and stream logs' store), one controller and several workers presenting
 * simulated GPUs, all child processes of the caller, on loopback. `corral up` runs it for people; the e2e tests run exactly the same code.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterStatus } from '../proto/gen/corral/v1/control.ts';
import { controlClient, fetchStatus } from './clients.ts';
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
  controllerListen?: string;
  /** Where the OpenAI-compatible HTTP API listens (default: a free loopback port). */
  httpListen?: string;
  workers: WorkerSpec[];
  /** Redis durability: everysec (default) or always (see redis-server.ts for the trade-off). */
  appendfsync?: AppendFsync;
  /** Extra environment for every process (e.g. CORRAL_LOG_LEVEL). */
  env?: NodeJS.ProcessEnv;
  onProgress?: (message: string) => void;
}

const TSX = ['--import', 'tsx'];

export class LocalCluster {
  readonly workers = new Map<string, ManagedProcess>();
  private controllerProcess: ManagedProcess | undefined;
  private redisServer: RedisServer | undefined;
  private address = '';
  private http = '';

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
      await cluster.startController();
      await Promise.all(options.workers.map((w) => cluster.startWorker(w)));
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  get grpcAddress(): string {
    return this.address;
  }

  /** host:port of the OpenAI-compatible HTTP API. */
  get httpAddress(): string {
    return this.http;
  }

  /** The cluster's Redis (restart() it to test recovery from its AOF). */
  get redis(): RedisServer {
    if (!this.redisServer) throw new Error('redis not started');
    return this.redisServer;
  }

  get controller(): ManagedProcess {
    if (!this.controllerProcess) throw new Error('controller not started');
    return this.controllerProcess;
  }

  private async startController(): Promise<void> {
    const { dir, config, controllerListen = '127.0.0.1:0', httpListen = '127.0.0.1:0' } = this.options;
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const configPath = join(dir, 'controller.yaml');
    writeFileSync(configPath, config);
    this.progress('starting controller');
    this.controllerProcess = new ManagedProcess(
      'controller',
      process.execPath,
      [
        ...TSX,
        join(REPO_ROOT, 'controller/main.ts'),
        '--config',
        configPath,
        '--listen',
        controllerListen,
        '--http-listen',
        httpListen,
        '--redis',
        this.redis.url,
      ],
      { env: this.env(), logFile: join(dir, 'logs', 'controller.log'), cwd: REPO_ROOT },
    );
    const endpoints = await this.controllerProcess.waitListening(30_000);
    if (!endpoints.grpc) throw new Error('controller reported no gRPC address');
    this.address = endpoints.grpc;
    this.http = endpoints.http ?? '';
    this.progress(`controller listening on ${this.address} (gRPC) and ${this.http} (HTTP)`);
  }

  /** Starts (or restarts) the worker of one node. */
  async startWorker(spec: WorkerSpec): Promise<ManagedProcess> {
    const args = [
      ...TSX,
      join(REPO_ROOT, 'worker/main.ts'),
      '--controller',
      this.address,
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

  async status(timeoutMs = 5000): Promise<ClusterStatus> {
    const client = controlClient(this.address);
    try {
      return await fetchStatus(client, timeoutMs);
    } finally {
      client.close();
    }
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
    await this.controllerProcess?.stop(graceMs);
    await this.redisServer?.stop();
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.options.env };
  }

  private progress(message: string): void {
    this.options.onProgress?.(message);
  }
}
