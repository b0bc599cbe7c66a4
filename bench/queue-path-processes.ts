/**
 * The server processes of bench/queue-path.ts: the controller and the fake worker, each a child running
 * queue-path-server.ts (its role in argv), driven over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Script } from '../test/integration/controller/fake-worker.ts';
import type { Pauses, ServerMessage, ServerRequest, Variant } from './queue-path-server.ts';

/** The controller and the fake worker, each in its child process (queue-path-server.ts). */
export class ServerProcess {
  private constructor(
    private readonly controller: Child,
    private readonly worker: Child,
    readonly ready: { controller: string; worker: string; engineId: string },
  ) {}

  /** With cpuProfileDir, the controller's child writes a .cpuprofile of its whole run there (node --cpu-prof). */
  static async start(config: object, cpuProfileDir?: string): Promise<ServerProcess> {
    const profile = cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : [];
    const controller = Child.fork('controller', JSON.stringify(config), profile);
    let worker: Child | undefined;
    try {
      const { controller: address } = await controller.first('listening');
      worker = Child.fork('worker', address ?? '', []);
      const [c, w] = await Promise.all([controller.first('ready'), worker.first('ready')]);
      return new ServerProcess(controller, worker, {
        controller: c.controller ?? '',
        worker: w.worker ?? '',
        engineId: c.engineId ?? '',
      });
    } catch (e) {
      worker?.kill();
      controller.kill();
      throw e;
    }
  }

  async variant(variant: Variant): Promise<void> {
    await this.controller.ask({ t: 'variant', variant });
  }

  /** What the fake worker answers every call from now on. */
  async script(script: Script): Promise<void> {
    await this.worker.ask({ t: 'script', script });
  }

  /** Each process's CPU so far (µs), and the controller's pauses since the last call. */
  async cpu(): Promise<{ controller: number; worker: number; pauses: Pauses | undefined }> {
    const [c, w] = await Promise.all([this.controller.ask({ t: 'cpu' }), this.worker.ask({ t: 'cpu' })]);
    return { controller: c.cpuMicros ?? 0, worker: w.cpuMicros ?? 0, pauses: c.pauses };
  }

  async submittedAt(ids: string[]): Promise<Record<string, number>> {
    return (await this.controller.ask({ t: 'submitted', ids })).submittedAt ?? {};
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    await this.controller.stop();
  }
}

/** One child of queue-path-server.ts, driven over IPC. */
class Child {
  private seq = 0;
  private readonly replies = new Map<number, (m: ServerMessage & { t: 'reply' }) => void>();
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly role: string,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.on('message', (m: ServerMessage) => {
      if (m.t !== 'reply') return;
      this.replies.get(m.seq)?.(m);
      this.replies.delete(m.seq);
    });
  }

  static fork(role: 'controller' | 'worker', arg: string, execArgv: string[]): Child {
    const script = fileURLToPath(new URL('./queue-path-server.ts', import.meta.url));
    return new Child(fork(script, [role, arg], { execArgv: ['--import', 'tsx', ...execArgv] }), role);
  }

  /** The child's first message of kind `t`; rejects if it exits before. */
  first<T extends 'listening' | 'ready'>(t: T): Promise<ServerMessage & { t: T }> {
    return new Promise((resolve, reject) => {
      this.proc.on('message', (m: ServerMessage) => m.t === t && resolve(m as ServerMessage & { t: T }));
      void this.exited.then((code) =>
        reject(new Error(`the bench ${this.role} exited (${code}) before it was ${t}`)),
      );
    });
  }

  /** The child's reply to `m`; rejects if it exits first (a dead child must not hang the bench). */
  ask(m: DistributiveOmit<ServerRequest, 'seq'>): Promise<ServerMessage & { t: 'reply' }> {
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      this.replies.set(seq, resolve);
      this.proc.send({ ...m, seq });
      void this.exited.then((code) => {
        if (this.replies.delete(seq))
          reject(new Error(`the bench ${this.role} exited (${code}) before answering ${m.t}`));
      });
    });
  }

  kill(): void {
    this.proc.kill();
  }

  async stop(): Promise<void> {
    if (this.proc.connected) this.proc.send('stop');
    await this.exited;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
