/**
 * useRedis(): the private Redis of one integration test file. It registers a beforeAll that starts the server
 * (startRedis: its own port and temp dir, AOF on) and an afterAll that quits the client and stops the server.
 * vitest runs after-hooks in stack order, so a file that calls it before its own hooks keeps Redis up until
 * those have stopped whatever uses it. Apart from redis.ts because the bench scripts import that one and
 * should not load vitest.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type TestRedis } from './redis.ts';
import { startedInHook } from './started-in-hook.ts';

export interface RedisFixture {
  /** The file's redis-server: `restart()` reloads its AOF. */
  readonly server: TestRedis;
  readonly url: string;
  /** An ioredis client on the server, opened on first use (commands wait for its connection) and quit in afterAll. */
  readonly client: Redis;
}

export function useRedis(): RedisFixture {
  let server: TestRedis | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await client?.quit();
    await server?.stop();
  });
  const started = () => startedInHook(server, "useRedis()'s server");
  return {
    get server() {
      return started();
    },
    get url() {
      return started().url;
    },
    get client() {
      client ??= new Redis(started().url);
      return client;
    },
  };
}
