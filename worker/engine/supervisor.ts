/**
 * Supervises one engine process (one engine id): spawn, wait for /health, watch for exit, restart with
 * backoff, stop with SIGTERM then SIGKILL. The lifecycle is the tagged union of state-machine.ts; this class
 * owns the I/O around it (process, timers, HTTP probes) and reports every state change through `onChange`
 * at once, so an engine exit reaches the controller in the next message, not the next heartbeat tick.
 */
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { EngineStatus } from '../../proto/gen/corral/v1/worker.ts';
import type { EngineHttpClient } from './engine-client.ts';
import { type EngineCommand, type EngineSpec, engineArgv, servedModelName } from './launch-command.ts';
import { LogRing } from './log-ring.ts';
import { MIN_SUPPORTED_VLLM, versionAtLeast } from './metric-names.ts';
import { type EngineLoad, readEngineLoad } from './metrics.ts';
import { decideRestart, type RestartPolicy } from './restart-policy.ts';
import type { EngineProcess, ExitStatus, Spawner } from './spawner.ts';
import {
  describe,
  type EngineLifecycle,
  type ExitInfo,
  isFinal,
  toProtoState,
  transition,
} from './state-machine.ts';

export interface SupervisorConfig {
  command: EngineCommand;
  engineHost: string;
  /** Never healthy within this long after a spawn: kill it and give up (FAILED). */
  startTimeoutMs: number;
  healthPollMs: number;
  restart: RestartPolicy;
  /** Grace between SIGTERM and SIGKILL when no StopEngine.grace_ms says otherwise. */
  stopGraceMs: number;
  /** Lines of engine output kept for EngineExit.log_tail. */
  logTailLines: number;
  /** Extra environment for every engine (e.g. VLLM_HOST_IP). */
  env: NodeJS.ProcessEnv;
  /**
   * A ready engine whose /health answers non-200 this many scrapes in a row is restarted. vLLM keeps the
   * process alive after its engine core died (EngineDeadError): /health turns 503, every request gets 500,
   * and only a restart brings it back. Timeouts do not count (a busy engine answers slowly, it is not dead).
   */
  unhealthyThreshold: number;
}

/** What supervising engines needs of the outside world (the worker agent passes its own on). */
export interface EngineDeps {
  spawner: Spawner;
  http: EngineHttpClient;
  clock: Clock;
  random: () => number;
  pickPort: (host: string) => Promise<number>;
  log: Logger;
}

export interface SupervisorDeps extends EngineDeps {
  onChange: (s: EngineSupervisor) => void;
}

const EMPTY_LOAD: EngineLoad = {
  running: undefined,
  waiting: undefined,
  kvCacheUsage: undefined,
  prefixCacheQueries: undefined,
  prefixCacheHits: undefined,
};

export class EngineSupervisor {
  private s: EngineLifecycle;
  private proc: EngineProcess | undefined;
  private readonly ring: LogRing;
  private readonly log: Logger;
  private restarts = 0;
  private consecutive = 0;
  private lastExit: ExitInfo | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** Set when we stop the engine because it failed (start timeout): the exit then ends in FAILED. */
  private failAfterStop: string | undefined;
  private load: EngineLoad = EMPTY_LOAD;
  private maxModelLen = 0;
  private unhealthy = 0;
  private readonly finalWaiters: Array<() => void> = [];
  readonly servedModel: string;

  constructor(
    readonly spec: EngineSpec,
    private readonly config: SupervisorConfig,
    private readonly deps: SupervisorDeps,
  ) {
    this.log = deps.log.child({ engineId: spec.engineId });
    this.ring = new LogRing(config.logTailLines);
    this.servedModel = servedModelName(spec);
    this.s = { t: 'starting', since: deps.clock.now(), pid: 0, port: undefined, attempt: 1 };
  }

  get state(): EngineLifecycle {
    return this.s;
  }

  /** host:port of the engine's HTTP API while it has one ('' before the port is chosen, and for headless). */
  get httpAddress(): string {
    const s = this.s;
    if ((s.t === 'starting' || s.t === 'ready') && s.port !== undefined)
      return `${this.config.engineHost}:${s.port}`;
    return '';
  }

  /** Spawns the first process. Later attempts come from the restart timer. */
  start(): void {
    this.log.info('launching engine', {
      model: this.spec.model,
      args: this.spec.args,
      headless: this.spec.headless,
    });
    void this.attempt();
  }

  /** Gives up before spawning anything (e.g. the node has too few free GPUs for this engine). */
  failWithoutStarting(detail: string): void {
    if (this.s.t === 'starting' && this.proc === undefined && this.s.pid === 0) this.fail(detail);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the engine is STOPPED (or FAILED). */
  stop(reason: string, graceMs = this.config.stopGraceMs): Promise<void> {
    const done = this.whenFinal();
    const s = this.s;
    if (s.t === 'exited') {
      clearTimeout(this.restartTimer);
      this.set({ t: 'stopping', since: this.now(), pid: undefined, reason });
      this.set({ t: 'stopped', since: this.now() });
    } else if (s.t === 'starting' || s.t === 'ready') {
      this.set({ t: 'stopping', since: this.now(), pid: this.proc?.pid, reason });
      if (this.proc) this.terminate(this.proc, graceMs);
      else this.set({ t: 'stopped', since: this.now() }); // still choosing a port: nothing to kill
    }
    return done;
  }

  /** Reads /metrics into the load reported with the next heartbeat, and checks /health (see unhealthyThreshold). */
  async scrape(timeoutMs: number): Promise<void> {
    const address = this.httpAddress;
    const proc = this.proc;
    if (this.s.t !== 'ready' || address === '' || !proc) {
      this.load = EMPTY_LOAD;
      return;
    }
    const [metrics, health] = await Promise.allSettled([
      this.deps.http.metrics(address, timeoutMs),
      this.deps.http.health(address, timeoutMs),
    ]);
    if (metrics.status === 'fulfilled') this.load = readEngineLoad(metrics.value);
    else this.log.warn('metrics scrape failed', { error: errorOf(metrics.reason) });
    if (health.status !== 'fulfilled') return;
    this.unhealthy = health.value === 200 ? 0 : this.unhealthy + 1;
    if (this.unhealthy === this.config.unhealthyThreshold && this.proc === proc && this.s.t === 'ready') {
      const why = `[corral] GET /health answered ${health.value} ${this.unhealthy} times in a row; restarting the engine`;
      this.ring.push(why);
      this.log.error('engine unhealthy; restarting it', { httpStatus: health.value, times: this.unhealthy });
      this.terminate(proc, this.config.stopGraceMs);
    }
  }

  status(): EngineStatus {
    const s = this.s;
    return {
      engineId: this.spec.engineId,
      state: toProtoState(s.t),
      model: this.servedModel,
      running: this.load.running ?? 0,
      waiting: this.load.waiting ?? 0,
      kvCacheUsage: this.load.kvCacheUsage ?? 0,
      prefixCacheQueries: this.load.prefixCacheQueries ?? 0,
      prefixCacheHits: this.load.prefixCacheHits ?? 0,
      restarts: this.restarts,
      lastExit: this.lastExit,
      httpAddress: this.httpAddress,
      detail: describe(s),
      stateSinceMs: s.since,
      maxModelLen: this.maxModelLen,
    };
  }

  logTail(n?: number): string[] {
    return this.ring.tail(n);
  }

  private whenFinal(): Promise<void> {
    return isFinal(this.s) ? Promise.resolve() : new Promise((resolve) => this.finalWaiters.push(resolve));
  }

  private async attempt(): Promise<void> {
    const host = this.config.engineHost;
    let port: number | undefined;
    try {
      port = this.spec.headless ? undefined : await this.deps.pickPort(host);
    } catch (e) {
      this.fail(`cannot choose a port on ${host}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (this.s.t !== 'starting') return; // stopped while we chose the port
    const { command, args } = engineArgv(this.config.command, this.spec, host, port);
    this.ring.clear();
    this.unhealthy = 0;
    const proc = this.deps.spawner.spawn(
      command,
      args,
      { env: { ...process.env, ...this.config.env, ...this.spec.env } },
      (stream, line) => {
        this.ring.push(line);
        this.log.info('engine output', { stream, line });
      },
    );
    this.proc = proc;
    this.s = { ...this.s, pid: proc.pid, port };
    this.log.info('engine spawned', { pid: proc.pid, command, args });
    this.deps.onChange(this);
    void proc.exited.then((x) => this.onExit(proc, x));
    if (this.spec.headless) {
      // A headless rank serves no HTTP: being up is all there is to observe. Its leader's /health covers it.
      this.set({ t: 'ready', since: this.now(), pid: proc.pid, port: undefined });
      return;
    }
    await this.waitHealthy(proc, `${host}:${port}`);
  }

  private async waitHealthy(proc: EngineProcess, address: string): Promise<void> {
    const startedAt = this.now();
    let lastProblem = 'no answer yet';
    while (this.proc === proc && this.s.t === 'starting') {
      if (this.now() - startedAt >= this.config.startTimeoutMs) {
        const tail = this.ring.tail(10);
        const detail =
          `engine ${this.spec.engineId} not healthy within ${this.config.startTimeoutMs} ms ` +
          `(--engine-start-timeout-ms; last probe: ${lastProblem})` +
          (tail.length > 0 ? `; last log lines: ${tail.join(' | ')}` : '; it printed nothing');
        this.failAfterStop = detail;
        this.set({ t: 'stopping', since: this.now(), pid: proc.pid, reason: detail });
        this.terminate(proc, this.config.stopGraceMs);
        return;
      }
      try {
        const status = await this.deps.http.health(address, Math.max(500, this.config.healthPollMs * 4));
        if (status === 200) break;
        lastProblem = `GET /health answered ${status}`;
      } catch (e) {
        // vLLM opens its port only after loading weights and profiling the KV cache: refused until then.
        lastProblem =
          e instanceof Error ? String((e.cause as Error | undefined)?.message ?? e.message) : String(e);
      }
      await sleep(this.config.healthPollMs);
    }
    if (this.proc !== proc || this.s.t !== 'starting') return;
    this.set({ t: 'ready', since: this.now(), pid: proc.pid, port: this.s.port });
    this.deps.http.maxModelLen(address, 5000).then(
      (len) => {
        if (len !== undefined) this.maxModelLen = len;
      },
      (e: unknown) => this.log.warn('GET /v1/models failed', { error: errorOf(e) }),
    );
    this.deps.http.version(address, 5000).then(
      (version) => {
        if (version === undefined) return;
        this.log.info('engine version', { version });
        if (!versionAtLeast(version, MIN_SUPPORTED_VLLM)) {
          this.log.warn('engine older than the oldest supported vLLM', {
            version,
            minimum: MIN_SUPPORTED_VLLM,
          });
        }
      },
      (e: unknown) => this.log.warn('GET /version failed', { error: errorOf(e) }),
    );
  }

  private onExit(proc: EngineProcess, x: ExitStatus): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    clearTimeout(this.killTimer);
    const exit: ExitInfo = {
      code: x.code ?? -1,
      signal: x.signal ?? '',
      logTail: this.ring.tail(),
      atMs: this.now(),
    };
    this.lastExit = exit;
    this.load = EMPTY_LOAD;
    const s = this.s;
    this.log.info('engine exited', { code: exit.code, signal: exit.signal, state: s.t });
    if (s.t === 'stopping') {
      if (this.failAfterStop !== undefined) this.fail(this.failAfterStop);
      else this.set({ t: 'stopped', since: this.now() });
      return;
    }
    if (s.t !== 'starting' && s.t !== 'ready') return;
    if (this.spec.groupMember) {
      this.fail(
        `${describeExit(exit)}; a rank of a multi-node group is not restarted alone (the controller rebuilds the group)`,
      );
      return;
    }
    const readyFor = s.t === 'ready' ? this.now() - s.since : 0;
    const decision = decideRestart(this.config.restart, this.consecutive, readyFor, this.deps.random);
    if (decision.t === 'give-up') {
      this.fail(`${describeExit(exit)}; ${decision.reason}`);
      return;
    }
    this.consecutive = decision.consecutive;
    this.set({ t: 'exited', since: this.now(), exit, restartAt: this.now() + decision.delayMs });
    this.restartTimer = setTimeout(() => {
      if (this.s.t !== 'exited') return;
      this.restarts += 1;
      this.set({ t: 'starting', since: this.now(), pid: 0, port: undefined, attempt: this.consecutive + 1 });
      void this.attempt();
    }, decision.delayMs);
  }

  private terminate(proc: EngineProcess, graceMs: number): void {
    proc.kill('SIGTERM');
    clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => {
      this.log.warn('engine still running after grace period; SIGKILL', { graceMs, pid: proc.pid });
      proc.kill('SIGKILL');
    }, graceMs);
  }

  private fail(detail: string): void {
    this.log.error('engine failed', { detail });
    this.set({ t: 'failed', since: this.now(), detail });
  }

  private set(next: EngineLifecycle): void {
    this.s = transition(this.s, next, this.log);
    if (isFinal(next)) {
      clearTimeout(this.restartTimer);
      for (const w of this.finalWaiters.splice(0)) w();
    }
    this.deps.onChange(this);
  }

  private now(): number {
    return this.deps.clock.now();
  }
}

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

function errorOf(e: unknown): Error | string {
  return e instanceof Error ? e : String(e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
