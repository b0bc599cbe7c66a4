/**
 * A child process of the local cluster (controller, worker, redis): its output goes to a log file, its
 * `"msg":"listening"` log line tells where it serves, and stopping it escalates SIGTERM -> SIGKILL so nothing
 * outlives the cluster.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Endpoints {
  grpc?: string;
  http?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const TAIL_LINES = 40;

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcessExit>;
  private readonly tail: string[] = [];
  private readonly log: WriteStream | undefined;
  private exit: ProcessExit | undefined;
  private listeningWaiters: Array<(e: Endpoints) => void> = [];
  private endpoints: Endpoints | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: {
      env?: NodeJS.ProcessEnv;
      logFile?: string;
      cwd?: string;
      onLine?: (line: string) => void;
    } = {},
  ) {
    this.log = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.onLine(line);
        options.onLine?.(line);
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.log?.end();
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  logTail(lines = 15): string[] {
    return this.tail.slice(-lines);
  }

  /** Resolves with the endpoints of the first `listening` line; rejects if the process exits first or times out. */
  waitListening(timeoutMs: number): Promise<Endpoints> {
    if (this.endpoints) return Promise.resolve(this.endpoints);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`${this.name} did not start listening within ${timeoutMs} ms${this.tailText()}`)),
        timeoutMs,
      );
      this.listeningWaiters.push((e) => {
        clearTimeout(timer);
        resolve(e);
      });
      void this.exited.then((x) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${describeExit(x)}) before listening${this.tailText()}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exit) this.child.kill(signal);
  }

  private onLine(line: string): void {
    this.log?.write(`${line}\n`);
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if (this.endpoints || !line.includes('"listening"')) return;
    try {
      const parsed = JSON.parse(line) as { msg?: string; grpc?: string; http?: string };
      if (parsed.msg !== 'listening') return;
      this.endpoints = { grpc: parsed.grpc, http: parsed.http };
      for (const w of this.listeningWaiters) w(this.endpoints);
      this.listeningWaiters = [];
    } catch {
      // not a JSON log line
    }
  }

  private tailText(): string {
    const t = this.logTail(10);
    return t.length > 0 ? `; last output:\n  ${t.join('\n  ')}` : '';
  }
}

export function describeExit(x: ProcessExit): string {
  return x.signal ? `signal ${x.signal}` : `code ${x.code}`;
}
