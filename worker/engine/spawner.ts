/**
 * Starting engine processes, behind a narrow interface so the supervisor can be tested with any command.
 *
 * Each engine runs in its own process group (`detached: true` makes it a group leader) and is signalled as a
 * group (`kill(-pid)`): the simulator's launcher is a bash script that `exec`s node, and `vllm serve` forks an
 * engine-core process per GPU rank; signalling only the direct child would orphan those. Every live group is
 * remembered so `killAllSync` can SIGKILL them from a process 'exit' handler (worker crash included).
 */
import { spawn } from 'node:child_process';
import { LineSplitter } from './log-ring.ts';

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EngineProcess {
  readonly pid: number;
  /** Resolves when the process exited and its output was read to the end (or shortly after exit). */
  readonly exited: Promise<ExitStatus>;
  /** Signals the whole process group; no-op once it is gone. */
  kill(signal: NodeJS.Signals): void;
}

export interface Spawner {
  spawn(
    command: string,
    args: readonly string[],
    options: SpawnOptions,
    onLine: (stream: 'stdout' | 'stderr', line: string) => void,
  ): EngineProcess;
}

const liveGroups = new Set<number>();

/** SIGKILLs every engine process group still alive. Synchronous: safe in process.on('exit'). */
export function killAllSync(): void {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  liveGroups.clear();
}

/** Output still buffered in the pipes when the process exits is read for at most this long. */
const DRAIN_AFTER_EXIT_MS = 300;

export const nodeSpawner: Spawner = {
  spawn(command, args, options, onLine) {
    const child = spawn(command, [...args], {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    const out = new LineSplitter();
    const errs = new LineSplitter();
    child.stdout.on('data', (c: Buffer) => {
      for (const l of out.push(c)) onLine('stdout', l);
    });
    child.stderr.on('data', (c: Buffer) => {
      for (const l of errs.push(c)) onLine('stderr', l);
    });
    if (pid !== undefined) liveGroups.add(pid);

    const exited = new Promise<ExitStatus>((resolve) => {
      let status: ExitStatus | undefined;
      const finish = () => {
        if (!status) return;
        for (const l of out.flush()) onLine('stdout', l);
        for (const l of errs.flush()) onLine('stderr', l);
        resolve(status);
      };
      child.once('error', (e) => {
        // spawn failure (ENOENT, EACCES): report it as an exit with the reason in the log
        onLine('stderr', `failed to start ${command}: ${e.message}`);
        status ??= { code: 127, signal: null };
        finish();
      });
      child.once('exit', (code, signal) => {
        status = { code, signal };
        if (pid !== undefined) {
          // The leader is gone; children it forked may live on in its group. Nothing of that engine may stay.
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // the group is empty
          }
          liveGroups.delete(pid);
        }
        const timer = setTimeout(finish, DRAIN_AFTER_EXIT_MS);
        child.once('close', () => {
          clearTimeout(timer);
          finish();
        });
      });
    });

    return {
      pid: pid ?? -1,
      exited,
      kill(signal) {
        if (pid === undefined || !liveGroups.has(pid)) return;
        try {
          process.kill(-pid, signal);
        } catch {
          child.kill(signal);
        }
      },
    };
  },
};
