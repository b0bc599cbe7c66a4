/**
 * A private redis-server per test file (cli/redis-server.ts: free loopback port, AOF on, appendfsync everysec
 * as the local cluster runs it) in its own temp dir, removed on stop. `restart()` reloads the AOF: how tests
 * prove that queued requests survive a Redis restart. A test file takes one through useRedis() (use-redis.ts);
 * the bench scripts call startRedis() themselves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppendFsync, type RedisServer, startRedisServer } from '../../cli/redis-server.ts';

export type TestRedis = RedisServer;

export async function startRedis(options: { appendfsync?: AppendFsync } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-redis-'));
  const server = await startRedisServer({ dir, ...options }).catch((e: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    ...server,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let prefixCounter = 0;
/** A key prefix unique to one test, so tests sharing a server never see each other's keys. */
export function testPrefix(name: string): string {
  prefixCounter += 1;
  return `t${process.pid}-${prefixCounter}-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`;
}
