/**
 * A private redis-server (the Debian package's binary) for the local cluster and the tests: loopback only, AOF
 * on, no RDB snapshots, its data in `dir`. `restart()` starts a new server on the same port and dir, so it
 * loads the AOF the old one wrote: how the chaos run and the tests prove that queued requests survive a Redis
 * restart.
 *
 * appendfsync: `everysec` (the default, as Redis recommends) fsyncs the AOF once a second, so a crash of the
 * Redis host can lose the last second of accepted requests; `always` fsyncs every write and loses nothing, at
 * the cost of one fsync per queue transition (see bench/queue.ts). A Redis process crash alone loses nothing
 * either way: the writes are in the kernel's page cache.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

export type AppendFsync = 'everysec' | 'always';

export interface RedisServerOptions {
  /** Where the AOF lives. Created if missing. */
  dir: string;
  /** Default: a free loopback port. */
  port?: number;
  appendfsync?: AppendFsync;
  /** Default: CORRAL_REDIS_SERVER or /usr/bin/redis-server. */
  binary?: string;
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** SHUTDOWN NOSAVE (the AOF is fsynced), SIGKILL if it lingers. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stop (SIGKILL with kill: a crash) and start again on the same port and dir, from the AOF, after downMs
   * without a server (default 0: at once; a real restart, a pod rescheduled, takes seconds).
   */
  restart(options?: { kill?: boolean; downMs?: number }): Promise<void>;
}

export async function startRedisServer(options: RedisServerOptions): Promise<RedisServer> {
  const { dir, appendfsync = 'everysec' } = options;
  const binary = options.binary ?? process.env.CORRAL_REDIS_SERVER ?? '/usr/bin/redis-server';
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined = await launch(binary, port, dir, appendfsync);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      if (child) await terminate(child, port, false);
      child = undefined;
    },
    async restart(restartOptions = {}) {
      if (child) await terminate(child, port, restartOptions.kill ?? false);
      child = undefined;
      if (restartOptions.downMs) await new Promise((r) => setTimeout(r, restartOptions.downMs));
      child = await launch(binary, port, dir, appendfsync);
    },
  };
}

async function launch(binary: string, port: number, dir: string, fsync: AppendFsync): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    fsync,
    '--dir',
    dir,
    '--daemonize',
    'no',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited with ${code}: ${stderr.slice(-500)}`)),
    );
    child.once('error', (e) =>
      reject(new Error(`cannot run ${binary} (apt-get install -y redis-server): ${e.message}`)),
    );
  });
  try {
    // A port can be taken between freePort() and bind; redis then exits and the race reports it.
    await Promise.race([waitForPing(port, 10_000), exited]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  child.removeAllListeners('exit');
  return child;
}

async function terminate(child: ChildProcess, port: number, kill: boolean): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (kill) child.kill('SIGKILL');
  else await sendCommand(port, 'SHUTDOWN NOSAVE').catch(() => undefined);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await sendCommand(port, 'PING')).startsWith('+PONG')) return;
    } catch {
      // not listening yet, or still loading the AOF (-LOADING)
    }
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One inline command over a raw socket: no Redis client needed to start or stop a server. */
function sendCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.endsWith('\r\n')) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
    socket.connect(port, '127.0.0.1', () => socket.write(`${command}\r\n`));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
