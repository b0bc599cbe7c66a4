/**
 * Test harness for the worker process: a fake controller (a real grpc-js Registry server on 127.0.0.1:0 that
 * records what the worker sends and lets the test send directives) and the worker itself as a child process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream, status } from '@grpc/grpc-js';
import {
  type ControllerMessage,
  type Heartbeat,
  type Hello,
  RegistryService,
  type WorkerMessage,
} from '../../../../proto/gen/corral/v1/registry.ts';
import { EngineState, type EngineStatus } from '../../../../proto/gen/corral/v1/worker.ts';

export const REPO = join(import.meta.dirname, '../../../..');
export const FAKE_ENGINE = join(REPO, 'test/fixtures/worker/fake-engine.mjs');

export interface ReceivedHeartbeat {
  at: number;
  heartbeat: Heartbeat;
}

export class FakeRegistry {
  readonly hellos: Hello[] = [];
  readonly heartbeats: ReceivedHeartbeat[] = [];
  /** Streams to refuse with ALREADY_EXISTS before accepting one. */
  rejectNext = 0;
  rejected = 0;
  private current: ServerDuplexStream<WorkerMessage, ControllerMessage> | undefined;
  private readonly server = new Server();
  port = 0;

  async start(): Promise<void> {
    this.server.addService(RegistryService, {
      register: (call: ServerDuplexStream<WorkerMessage, ControllerMessage>) => this.onStream(call),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
  }

  send(message: ControllerMessage): void {
    if (!this.current) throw new Error('no worker stream');
    this.current.write(message);
  }

  /** Ends the worker's stream with UNAVAILABLE, as a controller restart would. */
  breakStream(): void {
    const call = this.current;
    this.current = undefined;
    call?.emit('error', { code: status.UNAVAILABLE, details: 'controller restarting' });
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  /** The latest reported status of an engine. */
  engine(engineId: string): EngineStatus | undefined {
    for (let i = this.heartbeats.length - 1; i >= 0; i--) {
      const e = this.heartbeats[i]?.heartbeat.engines.find((x) => x.engineId === engineId);
      if (e) return e;
    }
    return undefined;
  }

  /**
   * SIGKILLs the engine's process (the pid its reported detail names) and waits for the heartbeat that reports
   * it EXITED; returns the pid, that heartbeat's engine status and how long after the kill it came.
   */
  async killEngine(engineId: string): Promise<{ pid: number; exited: EngineStatus; afterMs: number }> {
    const pid = Number(/pid (\d+)/.exec(this.engine(engineId)?.detail ?? '')?.[1]);
    if (!(pid > 0)) throw new Error(`engine ${engineId} reported no pid`);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const exitedOf = (h: ReceivedHeartbeat) =>
      h.at >= killedAt
        ? h.heartbeat.engines.find(
            (e) => e.engineId === engineId && e.state === EngineState.ENGINE_STATE_EXITED,
          )
        : undefined;
    const report = await waitFor(`${engineId} exited`, () => this.heartbeats.find((h) => exitedOf(h)));
    return { pid, exited: exitedOf(report) as EngineStatus, afterMs: report.at - killedAt };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.current?.end();
      this.server.tryShutdown(() => resolve());
      setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000).unref();
    });
  }

  private onStream(call: ServerDuplexStream<WorkerMessage, ControllerMessage>): void {
    call.on('error', () => undefined);
    if (this.rejectNext > 0) {
      this.rejectNext -= 1;
      this.rejected += 1;
      call.once('data', () => {
        call.emit('error', {
          code: status.ALREADY_EXISTS,
          details: 'worker_id n1 is registered on another live stream',
        });
      });
      return;
    }
    this.current = call;
    call.on('data', (m: WorkerMessage) => {
      if (m.msg?.$case === 'hello') this.hellos.push(m.msg.value);
      if (m.msg?.$case === 'heartbeat') this.heartbeats.push({ at: Date.now(), heartbeat: m.msg.value });
    });
    call.on('end', () => {
      if (this.current === call) this.current = undefined;
      call.end();
    });
  }
}

export class WorkerProcess {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private grpcAddress: Promise<string>;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'worker/main.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let rest = '';
    let onListening: (a: string) => void = () => {};
    this.grpcAddress = new Promise((resolve) => {
      onListening = resolve;
    });
    this.child.stderr?.on('data', (c: Buffer) => {
      const parts = (rest + c.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        if (line.includes('"listening"')) {
          const parsed = JSON.parse(line) as { msg?: string; grpc?: string };
          if (parsed.msg === 'listening' && parsed.grpc) onListening(parsed.grpc);
        }
      }
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  listening(): Promise<string> {
    return this.grpcAddress;
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
