/**
 * A private redis-server per test file: free loopback port, its own temp dir, AOF on (appendfsync everysec, as
 * the local cluster runs it), no RDB snapshots. `restart()` starts a new server on the same port and dir, so it
 * loads the AOF the old one wrote: that is how tests prove that queued requests survive a Redis restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** SHUTDOWN NOSAVE, SIGKILL if it lingers, then remove the dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Stop the server (without removing the dir) and start it again on the same port from its AOF. */
  restart(options?: { kill?: boolean }): Promise<void>;
}

const REDIS_BIN = process.env.CORRAL_REDIS_SERVER ?? '/usr/bin/redis-server';

export async function startRedis(options: { appendfsync?: 'everysec' | 'always' } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined = await launch(port, dir, options.appendfsync ?? 'everysec');
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) await terminate(child, port, false);
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
    async restart(restartOptions = {}) {
      if (stopped) throw new Error('redis already stopped');
      if (child) await terminate(child, port, restartOptions.kill ?? false);
      child = await launch(port, dir, options.appendfsync ?? 'everysec');
    },
  };
}

async function launch(port: number, dir: string, fsync: string): Promise<ChildProcess> {
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
  const child = spawn(REDIS_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited with ${code}: ${stderr.slice(-500)}`)),
    );
    child.once('error', reject);
  });
  // A port can be taken between freePort() and bind; redis then exits and the race below reports it.
  await Promise.race([waitForPing(port, 10_000), exited]);
  child.removeAllListeners('exit');
  return child;
}

/** SHUTDOWN NOSAVE asks redis to exit cleanly (the AOF is fsynced); SIGKILL simulates a crash or a hang. */
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

/** One inline command over a raw socket: the helper needs no Redis client of its own. */
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

let prefixCounter = 0;
/** A key prefix unique to one test, so tests sharing a server never see each other's keys. */
export function testPrefix(name: string): string {
  prefixCounter += 1;
  return `t${process.pid}-${prefixCounter}-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`;
}
