/**
 * bench:queue — what the durable queue adds between a client's submit and the dispatcher holding the request
 * (issue 5 target: at 256 concurrent streams, at most +2 ms p50 and +10 ms p99 to time-to-first-token).
 *
 * Two paths, measured in the same run on the same machine, with the same client and dispatcher loops:
 *   memory   MemoryQueue (the pure policy, in process): the direct-dispatch baseline
 *   redis    RequestQueue on a private redis-server (AOF everysec): submit script, arrival PUBLISH, take
 *            script, finish script; the dispatcher sleeps on ArrivalSignal when the queue is empty
 * Two loads per path:
 *   saturated  256 clients in a closed loop (submit, wait until dispatched, submit again): sustained req/s,
 *              and the latency when the queue is the bottleneck
 *   paced      the same 256 clients but an open-loop arrival rate (default: half the redis path's
 *              saturated rate): the latency a request sees when the queue is not the bottleneck
 * Latency = submit() called -> take() returned the request, in the dispatcher. Also split: submit and take
 * round trips. The stream log hop (append of the first event -> the gateway's follow() yields it) is measured
 * separately (queue-stream.ts): time-to-first-token through the durable path adds both.
 * End to end (queue-path.ts): time-to-first-token of `concurrency` streams through a real controller and a fake
 * worker that answers at once (each in a child process, as a controller runs apart from its clients and from
 * the GPU nodes' workers), beside the same clients calling that worker directly (across the same process
 * boundary): what the whole durable
 * path (gateway, queue, dispatcher, stream log) adds to a request, and the requests/s it sustains.
 *
 * Usage: npm run bench:queue [-- --json] [-- --seconds 3 --paced-seconds 20 --concurrency 256 --batch 32 --rate N]
 *   --seconds        each saturated run, and each queue-only paced run (thousands of samples a second)
 *   --paced-seconds  each end-to-end paced run (direct, and each durable way): ~200 samples a second, whose
 *                    p99 is the target
 *   --cpu-prof-dir   the end-to-end controller process writes its CPU profile there (node --cpu-prof)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { systemClock } from '../common/clock.ts';
import { ArrivalSignal } from '../controller/queue/arrival-signal.ts';
import { MemoryQueue } from '../controller/queue/memory-queue.ts';
import { RequestQueue } from '../controller/queue/request-queue.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { type EndToEnd, measureEndToEnd, type PathResult } from './queue-path.ts';
import { measureStreamHop } from './queue-stream.ts';

/** The queue as the bench drives it: enough to run the same loops over both paths. */
interface Path {
  submit(id: string): Promise<void>;
  take(n: number): Promise<string[]>;
  finish(id: string): void;
  /** Resolves on the next arrival (or a timeout), given the arrival count seen before an empty take. */
  arrivals(): number;
  waitArrival(seen: number): Promise<unknown>;
}

interface Result {
  requests: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  submitMs: { p50: number; p99: number };
  takeMs: { p50: number; p99: number };
}

async function run(path: Path, o: { concurrency: number; batch: number; seconds: number; rate?: number }) {
  const started = new Map<string, number>();
  const waiting = new Map<string, () => void>();
  const latencies: number[] = [];
  const submitTimes: number[] = [];
  const takeTimes: number[] = [];
  let stop = false;
  let seq = 0;

  const dispatcher = (async () => {
    while (!stop || waiting.size > 0) {
      const seen = path.arrivals();
      const t0 = performance.now();
      const ids = await path.take(o.batch);
      const t1 = performance.now();
      if (ids.length === 0) {
        if (stop && waiting.size === 0) break;
        await path.waitArrival(seen);
        continue;
      }
      takeTimes.push(t1 - t0);
      for (const id of ids) {
        latencies.push(t1 - (started.get(id) ?? t1));
        started.delete(id);
        path.finish(id);
        waiting.get(id)?.();
        waiting.delete(id);
      }
    }
  })();

  const one = async () => {
    const id = `r${seq++}`;
    const dispatched = new Promise<void>((resolve) => waiting.set(id, resolve));
    const t0 = performance.now();
    started.set(id, t0);
    await path.submit(id);
    submitTimes.push(performance.now() - t0);
    await dispatched;
  };

  const begin = performance.now();
  const endAt = begin + o.seconds * 1000;
  const clients: Promise<void>[] = [];
  if (o.rate === undefined) {
    for (let c = 0; c < o.concurrency; c++)
      clients.push(
        (async () => {
          while (performance.now() < endAt) await one();
        })(),
      );
  } else {
    // open loop: arrivals on a fixed schedule, at most `concurrency` in flight
    const rate = o.rate;
    clients.push(
      (async () => {
        let inFlight = 0;
        const pending: Promise<void>[] = [];
        for (let i = 0; performance.now() < endAt; i++) {
          const due = begin + (i * 1000) / rate;
          const now = performance.now();
          if (due > now) await new Promise((r) => setTimeout(r, due - now));
          if (inFlight >= o.concurrency) continue;
          inFlight += 1;
          pending.push(one().finally(() => (inFlight -= 1)));
        }
        await Promise.all(pending);
      })(),
    );
  }
  await Promise.all(clients);
  stop = true;
  await path.submit(`wake-${seq}`).catch(() => undefined); // unblock a sleeping dispatcher
  await dispatcher;
  const seconds = (performance.now() - begin) / 1000;
  return {
    requests: latencies.length,
    seconds: round(seconds),
    perSecond: Math.round(latencies.length / seconds),
    latencyMs: {
      p50: pct(latencies, 0.5),
      p90: pct(latencies, 0.9),
      p99: pct(latencies, 0.99),
      max: pct(latencies, 1),
    },
    submitMs: { p50: pct(submitTimes, 0.5), p99: pct(submitTimes, 0.99) },
    takeMs: { p50: pct(takeTimes, 0.5), p99: pct(takeTimes, 0.99) },
  } satisfies Result;
}

function memoryPath(): Path {
  const q = new MemoryQueue();
  let gen = 0;
  let wake: (() => void) | undefined;
  return {
    async submit(id) {
      q.submit({ id, tenant: `t${id.length % 4}`, weight: 1, cls: 'standard' });
      gen += 1;
      wake?.();
    },
    async take(n) {
      return q.take(n, 0).map((i) => i.id);
    },
    finish() {},
    arrivals: () => gen,
    waitArrival(seen) {
      if (gen > seen) return Promise.resolve();
      return new Promise<void>((r) => {
        wake = r;
      });
    },
  };
}

interface ServerStats {
  scriptCalls: number;
  scriptUsec: number;
  cpuSeconds: number;
}

async function redisPath(
  url: string,
  deployment: string,
): Promise<Path & { close(): Promise<void>; serverStats(): Promise<ServerStats> }> {
  // separate connections, as a gateway and a dispatcher on different replicas would have
  const gw = new Redis(url);
  const disp = new Redis(url);
  const submitQ = new RequestQueue({ redis: gw, clock: systemClock, deployment });
  const takeQ = new RequestQueue({ redis: disp, clock: systemClock, deployment });
  const signal = await ArrivalSignal.open(disp, deployment);
  return {
    async submit(id) {
      await submitQ.submit({ id, tenant: `t${id.length % 4}`, weight: 1, cls: 'standard', body: BODY });
    },
    async take(n) {
      return (await takeQ.take('bench', n)).map((r) => r.id);
    },
    finish(id) {
      void takeQ.finish('bench', id);
    },
    arrivals: () => signal.generation,
    waitArrival: (seen) => signal.after(seen, 100),
    async serverStats() {
      const info = await gw.info('commandstats');
      const cpu = await gw.info('cpu');
      const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(info);
      const user = Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1] ?? 0);
      const sys = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1] ?? 0);
      return { scriptCalls: Number(m?.[1] ?? 0), scriptUsec: Number(m?.[2] ?? 0), cpuSeconds: user + sys };
    },
    async close() {
      await signal.close();
      await gw.quit();
      await disp.quit();
    },
  };
}

// a GenerateRequest as the gateway would store it: a chat prompt of ~1 KiB
const BODY = JSON.stringify({ model: 'llama-3.1-405b-instruct', prompt: 'x'.repeat(1000), maxTokens: 256 });

function pct(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      seconds: { type: 'string', default: '3' },
      'paced-seconds': { type: 'string', default: '20' },
      'cpu-prof-dir': { type: 'string' },
      concurrency: { type: 'string', default: '256' },
      batch: { type: 'string', default: '32' },
      rate: { type: 'string' },
    },
  });
  const o = {
    concurrency: Number(values.concurrency),
    batch: Number(values.batch),
    seconds: Number(values.seconds),
  };
  const progress = (msg: string) => process.stderr.write(`bench:queue ${msg}\n`);
  const server = await startRedis();
  try {
    progress('memory, saturated');
    const memSat = await run(memoryPath(), o);
    progress('redis, saturated');
    const r1 = await redisPath(server.url, 'bench-saturated');
    const before = await r1.serverStats();
    const redisSat = await run(r1, o);
    const after = await r1.serverStats();
    await r1.close();
    // where the time goes: Redis executing the scripts vs everything else (client, event loop, network)
    const server_ = {
      scriptUsecPerRequest: round((after.scriptUsec - before.scriptUsec) / Math.max(1, redisSat.requests)),
      scriptCallsPerRequest: round((after.scriptCalls - before.scriptCalls) / Math.max(1, redisSat.requests)),
      redisCpuUsecPerRequest: round(
        ((after.cpuSeconds - before.cpuSeconds) * 1e6) / Math.max(1, redisSat.requests),
      ),
    };
    const rate = values.rate ? Number(values.rate) : Math.max(1, Math.round(redisSat.perSecond / 2));
    progress(`memory, paced at ${rate}/s`);
    const memPaced = await run(memoryPath(), { ...o, rate });
    progress(`redis, paced at ${rate}/s`);
    const r2 = await redisPath(server.url, 'bench-paced');
    const redisPaced = await run(r2, { ...o, rate });
    await r2.close();
    progress(`stream log hop, ${o.concurrency} followers`);
    const streamHop = await measureStreamHop(server.url, o.concurrency, 4);
    progress(`end to end, ${o.concurrency} streams: direct to the worker, then through the controller`);
    const endToEnd = await measureEndToEnd(server.url, {
      ...o,
      pacedSeconds: Number(values['paced-seconds']),
      ...(values['cpu-prof-dir'] ? { cpuProfileDir: values['cpu-prof-dir'] } : {}),
    });
    const report = {
      bench: 'queue',
      concurrency: o.concurrency,
      batch: o.batch,
      pacedRatePerSecond: rate,
      saturated: {
        memory: memSat,
        redis: redisSat,
        throughputRatio: round(redisSat.perSecond / memSat.perSecond),
      },
      paced: {
        memory: memPaced,
        redis: redisPaced,
        addedLatencyMs: {
          p50: round(redisPaced.latencyMs.p50 - memPaced.latencyMs.p50),
          p99: round(redisPaced.latencyMs.p99 - memPaced.latencyMs.p99),
        },
      },
      streamHop,
      endToEnd,
      target: { addedP50Ms: 2, addedP99Ms: 10 },
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
    const row = (name: string, r: Result) =>
      `${name.padEnd(18)} ${String(r.perSecond).padStart(8)} ${fmt(r.latencyMs.p50)} ${fmt(r.latencyMs.p99)} ${fmt(r.submitMs.p50)} ${fmt(r.submitMs.p99)} ${fmt(r.takeMs.p50)} ${fmt(r.takeMs.p99)}`;
    const lines = [
      `queue bench: ${o.concurrency} concurrent clients, take batch ${o.batch}, ${o.seconds} s per run (end-to-end paced: ${values['paced-seconds']} s per path)`,
      `${'path'.padEnd(18)} ${'req/s'.padStart(8)} ${'lat p50'.padStart(9)} ${'lat p99'.padStart(9)} ${'sub p50'.padStart(9)} ${'sub p99'.padStart(9)} ${'take p50'.padStart(9)} ${'take p99'.padStart(9)}   (ms)`,
      row('memory saturated', memSat),
      row('redis saturated', redisSat),
      row(`memory ${rate}/s`, memPaced),
      row(`redis ${rate}/s`, redisPaced),
      `added by the durable path at ${rate}/s: p50 ${report.paced.addedLatencyMs.p50} ms, p99 ${report.paced.addedLatencyMs.p99} ms (target <= 2 / 10)`,
      `saturated throughput ratio redis/memory: ${report.saturated.throughputRatio}`,
      `stream log hop (append -> follower yields the event, ${o.concurrency} followers): p50 ${fmt(streamHop.latencyMs.p50).trim()} ms, p99 ${fmt(streamHop.latencyMs.p99).trim()} ms; append p50 ${fmt(streamHop.appendMs.p50).trim()} ms`,
      `end to end (fake worker answering at once), saturated with ${o.concurrency} streams: direct ${endToEnd.saturated.direct.perSecond} req/s, durable path ${endToEnd.saturated.durable.log.perSecond} req/s reading the log back, ${endToEnd.saturated.durable.live.perSecond} req/s with the in-process hand-off, ${endToEnd.saturated.durable.local.perSecond} req/s also taken in the submit`,
      `end to end, paced at ${endToEnd.pacedRatePerSecond}/s (TTFT ms; cpu: the server processes' CPU ms per request, all / the controller's; loop: the controller's event-loop delay p99 / max ms, gc: its longest GC pause ms; durable stages are means: admit / queue / worker / delivery, and their p99s):`,
      ...ttftRows(endToEnd.paced),
      `end to end, saturated (${o.concurrency} streams open; TTFT is mostly waiting for a CPU):`,
      ...ttftRows(endToEnd.saturated),
      `added by the durable path (TTFT - direct): reading the log back p50 ${endToEnd.addedTtftMs.log.p50} p99 ${endToEnd.addedTtftMs.log.p99} ms; with the in-process hand-off p50 ${endToEnd.addedTtftMs.live.p50} p99 ${endToEnd.addedTtftMs.live.p99} ms; also taken in the submit p50 ${endToEnd.addedTtftMs.local.p50} p99 ${endToEnd.addedTtftMs.local.p99} ms (target <= 2 / 10)`,
      `end to end, ${o.concurrency} streams open (each ${endToEnd.streaming.tokens} tokens, one every ${endToEnd.streaming.intervalMs} ms, so TTFT includes ${endToEnd.streaming.intervalMs} ms of the worker's):`,
      ttftRow('direct to the worker', endToEnd.streaming.direct),
      ttftRow('durable, as shipped', endToEnd.streaming.durable),
      `added by the durable path at ${o.concurrency} open streams (the target's load): p50 ${endToEnd.streaming.addedTtftMs.p50} p99 ${endToEnd.streaming.addedTtftMs.p99} ms (target <= 2 / 10)`,
      'the same load with fewer streams open (one round each):',
      ...endToEnd.streaming.fewer.flatMap((f) => [
        ttftRow(`direct, ${f.streams} streams`, f.direct),
        ttftRow(`durable, ${f.streams} streams`, f.durable),
        `  added at ${f.streams} open streams: p50 ${f.addedTtftMs.p50} p99 ${f.addedTtftMs.p99} ms`,
      ]),
      `redis server per request (saturated): ${server_.scriptCallsPerRequest} script calls, ${server_.scriptUsecPerRequest} us in scripts, ${server_.redisCpuUsecPerRequest} us CPU`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await server.stop();
  }
}

function ttftRows(e: EndToEnd['paced']): string[] {
  return [
    ttftRow('direct to the worker', e.direct),
    ttftRow('durable, log read back', e.durable.log),
    ttftRow('durable, in-process', e.durable.live),
    ttftRow('durable, taken in submit', e.durable.local),
  ];
}

function ttftRow(name: string, r: PathResult): string {
  const st = r.stagesMs;
  const q = r.stagesP99Ms;
  const stages =
    st && q
      ? `   ${st.admit} / ${st.queue} / ${st.worker} / ${st.delivery} (p99 ${q.admit} / ${q.queue} / ${q.worker} / ${q.delivery})`
      : '';
  const p = r.controllerPauses;
  const cpu = `${r.serverCpuMsPerRequest.toFixed(2)} / ${r.controllerCpuMsPerRequest.toFixed(2)}`;
  const pauses = `loop ${p.loopP99Ms} / ${p.loopMaxMs} gc ${p.gcMaxMs}`;
  return `  ${name.padEnd(26)} p50 ${fmt(r.ttftMs.p50)} p99 ${fmt(r.ttftMs.p99)} n ${String(r.requests).padStart(6)} req/s ${String(r.perSecond).padStart(5)} cpu ${cpu.padStart(11)} ${pauses}${stages}`;
}

function fmt(x: number): string {
  return x.toFixed(2).padStart(9);
}

await main();
