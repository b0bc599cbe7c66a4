/**
 * The stream-log hop of the durable path, for bench/queue.ts: the time from the dispatcher's append() of a
 * request's first event to the gateway's follow() of that request yielding it (XREAD BLOCK wakes on XADD).
 * This hop sits on time-to-first-token next to enqueue -> take. `concurrency` followers wait at once, each on
 * its own connection (as StreamLog.follow does); events are appended one request at a time, paced, so the
 * figure is the hop itself and not a burst of 256 wake-ups.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { StreamLog } from '../controller/queue/stream-log.ts';
import type { GenerateEvent } from '../proto/gen/corral/v1/inference.ts';

export interface HopResult {
  events: number;
  latencyMs: { p50: number; p99: number; max: number };
  appendMs: { p50: number; p99: number };
}

export async function measureStreamHop(url: string, concurrency: number, rounds: number): Promise<HopResult> {
  const redis = new Redis(url);
  const log = new StreamLog({ redis, deployment: 'bench-stream', prefix: `bench${process.pid}` });
  const hops: number[] = [];
  const appends: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const ac = new AbortController();
      setMaxListeners(concurrency, ac.signal); // every follower of the round listens to this one signal
      const sentAt = new Map<string, number>();
      const ids = Array.from({ length: concurrency }, (_, i) => `r${round}-${i}`);
      const readers = ids.map(async (id) => {
        for await (const _ of log.follow(id, undefined, ac.signal, 10_000)) {
          hops.push(performance.now() - (sentAt.get(id) ?? Number.NaN));
          return;
        }
      });
      // let every follower reach XREAD BLOCK: a PING on a fresh connection would not prove it, so wait
      await new Promise((r) => setTimeout(r, 200));
      for (const id of ids) {
        const ev: GenerateEvent = {
          requestId: id,
          event: { $case: 'started', value: { model: 'm', promptTokens: 1, promptTokenIds: [] } },
        };
        const t0 = performance.now();
        sentAt.set(id, t0);
        await log.append(id, ev);
        appends.push(performance.now() - t0);
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(readers);
      ac.abort();
    }
  } finally {
    log.close(); // its idle follower connections: left open, they kept the bench alive after Redis stopped
    await redis.quit();
  }
  return {
    events: hops.length,
    latencyMs: { p50: pct(hops, 0.5), p99: pct(hops, 0.99), max: pct(hops, 1) },
    appendMs: { p50: pct(appends, 0.5), p99: pct(appends, 0.99) },
  };
}

function pct(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 1000) / 1000;
}
