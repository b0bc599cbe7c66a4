/**
 * The durable path end to end, for bench/queue.ts: time-to-first-token through a real controller (gateway ->
 * Redis queue -> dispatcher -> Worker.Generate -> stream log -> gateway) beside the same clients calling the
 * worker directly (the direct-dispatch baseline: what a request costs without controller, queue or log).
 * The worker is the tests' fake (test/integration/controller/fake-worker.ts): it streams its canned deltas at
 * once, so the figures are the control plane's own cost, not an engine's.
 * Process boundaries: the controller and the fake worker each run in a child process of their own
 * (queue-path-server.ts), the clients here, as in production, where a controller shares its event loop neither
 * with the clients' streams nor with the GPU nodes' workers. The direct baseline crosses the same boundary: the
 * same clients, here, call the fake worker in its child. Before, the fake worker ran in the controller's
 * process, so the durable path's TTFT also paid for the worker's own serving (~0.9 ms of CPU a request: the
 * whole of the direct path's server cost) queueing on the controller's event loop, a contention production does
 * not have and the direct path did not pay; the worker's serving time itself is still in the durable TTFT,
 * which waits for the worker's first token as before.
 * Two loads, each on both paths:
 *   saturated  `concurrency` clients in a closed loop (send, read to the end, send again) for `seconds`: the
 *              requests/s each path sustains; TTFT there is mostly waiting for a CPU
 *   paced      an open loop at half the durable path's (log read back) saturated rate (at most `concurrency`
 *              in flight) for `pacedSeconds` each: what the durable path adds to TTFT when it is not the
 *              bottleneck. Longer than the saturated runs: its p99 is the target, and needs the samples.
 *   streaming  `concurrency` streams open at all times, each as long as a 405B answer (STREAM: the fake worker
 *              writes a token every 30 ms, a TP8 H100 group's decode step at batch 64-128 by the calibration,
 *              128 of them): clients in a closed loop, their first calls staggered over one stream's length so
 *              they do not start and end together, and calls started within it not counted. The load the
 *              target names ("at 256 concurrent streams"): the controller relays every token (log append and
 *              hand-off) while it admits and dispatches new requests. Direct and shipped path only.
 *              Measured first with fewer streams open (STREAM_SWEEP): the added TTFT while the machine (clients,
 *              fake worker, controller and Redis on the same cores) still has CPU to spare.
 * TTFT = call started -> first delta received.
 * The durable path runs three ways on the same controller, in alternating rounds so the shared machine's noise
 * falls on all: `log` with the in-process hand-off off (every event read back from the stream log, the
 * dispatcher woken by the queue's PUBLISH: the path before LiveFeed), `live` with the hand-off but submit and
 * take apart (submit, wake, take: the path before Dispatcher.submit) and `local` as it ships (a request queued
 * where a group has room is taken in its submit script; its reader waits for the run, no XREAD). Each durable
 * request's Finished.timing splits its TTFT (means; the controller's timings are whole ms, the submit time
 * sub-ms, from the child's clock as performance.timeOrigin + now, comparable with this process's): admit
 * (call -> queued), queue (queued -> dispatched), worker (dispatched -> first token at the dispatcher),
 * delivery (-> the client has it); and each stage's p99, to say which one makes the TTFT tail.
 * Server CPU is both children's (controller and fake worker), per request, on both paths; `controller` is the
 * controller's alone. Pauses: the controller's event-loop delay (p99, max) and GC pauses during the sample, to
 * tell a TTFT tail made by the controller's loop from one made elsewhere (the clients, Redis, the machine).
 */
import { performance } from 'node:perf_hooks';
import { credentials, Metadata } from '@grpc/grpc-js';
import { inferenceClient } from '../cli/clients.ts';
import { type GenerateEvent, type GenerateRequest, PriorityClass } from '../proto/gen/corral/v1/inference.ts';
import { WorkerClient } from '../proto/gen/corral/v1/worker.ts';
import { ServerProcess } from './queue-path-processes.ts';
import type { Pauses, Variant } from './queue-path-server.ts';

const MODEL = 'bench-model';

export interface PathResult {
  requests: number;
  perSecond: number;
  /** CPU time of the server processes (controller and fake worker: all the server side) per request. */
  serverCpuMsPerRequest: number;
  /** The controller process's alone. */
  controllerCpuMsPerRequest: number;
  /** The controller's event-loop delay and GC pauses: the worst of the samples' (ms). */
  controllerPauses: { loopP99Ms: number; loopMaxMs: number; gcMaxMs: number; gcMsPerSecond: number };
  ttftMs: { p50: number; p99: number };
  /** Durable path only: where its TTFT went, means in ms (see the top of this file). */
  stagesMs?: Stages;
  /** Each stage's p99 (ms): which one makes the TTFT tail. */
  stagesP99Ms?: Stages;
}

const VARIANTS: readonly Variant[] = ['log', 'live', 'local'];
type Durable = Record<Variant, PathResult>;

export interface EndToEnd {
  saturated: { direct: PathResult; durable: Durable };
  pacedRatePerSecond: number;
  paced: { direct: PathResult; durable: Durable };
  /** Paced: durable TTFT minus direct TTFT, each way. */
  addedTtftMs: Record<keyof Durable, Added>;
  streaming: Streaming & {
    tokens: number;
    intervalMs: number;
    /** The same load with fewer streams open (STREAM_SWEEP), one round each: where the machine runs out. */
    fewer: Streaming[];
  };
}

interface Streaming {
  streams: number;
  direct: PathResult;
  durable: PathResult;
  addedTtftMs: Added;
}

type Added = { p50: number; p99: number };

/** A streaming call's answer: 128 tokens, one every 30 ms (see the top of this file). */
const STREAM = { tokens: 128, intervalMs: 30 };
/** Fewer open streams, measured before the target's load: the added TTFT while the machine still has CPU. */
const STREAM_SWEEP = [64, 128];

export async function measureEndToEnd(
  redisUrl: string,
  o: { concurrency: number; seconds: number; pacedSeconds: number; cpuProfileDir?: string },
): Promise<EndToEnd> {
  const config = {
    listen: '127.0.0.1:0',
    redis: redisUrl,
    // The fake worker answers at once (a sequence is held for milliseconds, not the 405B service time the
    // queue assumes by default), and the bench measures admitted requests: a saturated round must not shed.
    queue: { serviceMs: 100, maxWaitMs: 60_000 },
    deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxNumSeqs: 4 * o.concurrency }],
  };
  const server = await ServerProcess.start(config, o.cpuProfileDir);
  const gateway = inferenceClient(server.ready.controller);
  const direct = new WorkerClient(server.ready.worker, credentials.createInsecure());
  try {
    const engineId = server.ready.engineId;
    let seq = 0;
    const viaWorker: Call = () => ({
      stream: direct.generate({ engineId, request: request(`d${seq++}`) }, new Metadata()),
    });
    const viaController: Call = () => {
      const id = `q${seq++}`;
      return { id, stream: gateway.generate(request(id), new Metadata()) };
    };
    const submitted = (ids: string[]) => server.submittedAt(ids);
    /** A sample, with the server process's CPU time it cost. */
    const measured = async (load: LoadOptions, call: Call, traced?: typeof submitted): Promise<Sample> => {
      const before = await server.cpu();
      const s = await sample(load, call, traced);
      const after = await server.cpu();
      return {
        ...s,
        cpuMicros: after.controller + after.worker - before.controller - before.worker,
        controllerCpuMicros: after.controller - before.controller,
        pauses: after.pauses,
      };
    };
    const durable = async (o2: LoadOptions): Promise<Durable> => {
      const rounds = { log: [] as Sample[], live: [] as Sample[], local: [] as Sample[] };
      const slice = { ...o2, seconds: o2.seconds / ROUNDS };
      for (let r = 0; r < ROUNDS; r++) {
        for (const variant of VARIANTS) {
          await server.variant(variant);
          rounds[variant].push(await measured(slice, viaController, submitted));
        }
      }
      return { log: summarise(rounds.log), live: summarise(rounds.live), local: summarise(rounds.local) };
    };
    const saturated = { direct: summarise([await measured(o, viaWorker)]), durable: await durable(o) };
    const rate = Math.max(1, Math.round(saturated.durable.log.perSecond / 2));
    const pacedLoad = { concurrency: o.concurrency, seconds: o.pacedSeconds, rate };
    const paced = {
      direct: summarise([await measured(pacedLoad, viaWorker)]),
      durable: await durable(pacedLoad),
    };
    const streaming = await measureStreaming(server, o.concurrency, o.pacedSeconds, {
      direct: (load) => measured(load, viaWorker),
      durable: (load) => measured(load, viaController, submitted),
    });
    return {
      saturated,
      pacedRatePerSecond: rate,
      paced,
      addedTtftMs: {
        log: added(paced.durable.log, paced.direct),
        live: added(paced.durable.live, paced.direct),
        local: added(paced.durable.local, paced.direct),
      },
      streaming,
    };
  } finally {
    gateway.close();
    direct.close();
    await server.stop();
  }
}

/** Rounds each durable variant's time is cut into (alternating with the others). */
const ROUNDS = 4;

function added(d: PathResult, direct: PathResult): Added {
  return { p50: round(d.ttftMs.p50 - direct.ttftMs.p50), p99: round(d.ttftMs.p99 - direct.ttftMs.p99) };
}

/**
 * The streaming load (see the top of this file) on the shipped path and directly: first with fewer streams open
 * (STREAM_SWEEP, one round of `seconds` / 2 each), then at `concurrency`, alternating in two rounds of
 * `seconds` / 2 each; every round after its ramp. The fake worker answers STREAM meanwhile.
 */
async function measureStreaming(
  server: ServerProcess,
  concurrency: number,
  seconds: number,
  paths: Record<'direct' | 'durable', (load: LoadOptions) => Promise<Sample>>,
): Promise<EndToEnd['streaming']> {
  const deltas = Array.from({ length: STREAM.tokens }, (_, i) => ` t${i}`);
  const rampMs = STREAM.tokens * STREAM.intervalMs;
  await server.script({ t: 'stream', deltas, intervalMs: STREAM.intervalMs });
  await server.variant('local');
  const measure = async (streams: number, rounds: number): Promise<Streaming> => {
    const load = { concurrency: streams, seconds: seconds / 2 + rampMs / 1000, staggerMs: rampMs };
    const direct: Sample[] = [];
    const durable: Sample[] = [];
    for (let r = 0; r < rounds; r++) {
      direct.push(await paths.direct(load));
      durable.push(await paths.durable(load));
    }
    const d = summarise(direct);
    const q = summarise(durable);
    return { streams, direct: d, durable: q, addedTtftMs: added(q, d) };
  };
  const fewer: Streaming[] = [];
  for (const streams of STREAM_SWEEP.filter((n) => n < concurrency)) fewer.push(await measure(streams, 1));
  return { ...STREAM, ...(await measure(concurrency, 2)), fewer };
}

interface LoadOptions {
  concurrency: number;
  seconds: number;
  rate?: number;
  /**
   * Closed loop: client i makes its first call after i / concurrency of this, and calls started before it
   * ends are not counted (the ramp to `concurrency` open streams).
   */
  staggerMs?: number;
}

/** One call: its stream, and for a durable one its request id (to ask when the gateway submitted it). */
type Call = () => { id?: string; stream: AsyncIterable<GenerateEvent> };

type Stages = { admit: number; queue: number; worker: number; delivery: number };

interface Sample {
  seconds: number;
  ttft: number[];
  stages: Stages[];
  /** The server processes' CPU time during the sample (µs; the stage queries included, a few ms). */
  cpuMicros?: number;
  /** The controller process's alone. */
  controllerCpuMicros?: number;
  /** The controller's event-loop delay and GC pauses during the sample. */
  pauses?: Pauses;
}

/** A durable call's figures, split into stages once the server said when it submitted the request. */
interface Traced {
  id: string;
  /** Call started and first delta received, epoch ms (performance.timeOrigin + now). */
  startedAt: number;
  firstAt: number;
  timing: { queueMs: number; timeToFirstTokenMs: number };
}

/**
 * Closed loop of `concurrency` clients, or with `rate` an open loop of that many calls/s. With `submitted`
 * (durable calls), each call's TTFT is also split into stages (see the top of this file).
 */
async function sample(
  o: LoadOptions,
  call: Call,
  submitted?: (ids: string[]) => Promise<Record<string, number>>,
): Promise<Sample> {
  const ttft: number[] = [];
  const traced: Traced[] = [];
  const stagger = o.staggerMs ?? 0;
  const begin = performance.now();
  const endAt = begin + o.seconds * 1000;
  const one = async () => {
    const t0 = performance.now();
    const counted = t0 >= begin + stagger;
    const c = call();
    let firstAt: number | undefined;
    for await (const e of c.stream) {
      if (firstAt === undefined && e.event?.$case === 'delta') {
        firstAt = performance.now();
        if (counted) ttft.push(firstAt - t0);
      }
      const timing = e.event?.$case === 'finished' ? e.event.value.timing : undefined;
      if (counted && timing && firstAt !== undefined && c.id !== undefined)
        traced.push({
          id: c.id,
          startedAt: performance.timeOrigin + t0,
          firstAt: performance.timeOrigin + firstAt,
          timing,
        });
    }
  };
  if (o.rate === undefined) {
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, i) => {
        if (stagger > 0) await new Promise((r) => setTimeout(r, (i * stagger) / o.concurrency));
        while (performance.now() < endAt) await one();
      }),
    );
  } else {
    const pending = new Set<Promise<void>>();
    for (let i = 0; performance.now() < endAt; i++) {
      const due = begin + (i * 1000) / o.rate;
      const now = performance.now();
      if (due > now) await new Promise((r) => setTimeout(r, due - now));
      if (pending.size >= o.concurrency) continue;
      const p: Promise<void> = one().finally(() => pending.delete(p));
      pending.add(p);
    }
    await Promise.all(pending);
  }
  // The span counted calls started in (the last ones' streams may run on past it).
  const seconds = (Math.min(performance.now(), endAt) - begin - stagger) / 1000;
  const queuedAt = submitted ? await submitted(traced.map((t) => t.id)) : {};
  const stages: Stages[] = [];
  // The controller's timings count from the queue's submittedAt, in whole ms.
  for (const t of traced) {
    const q = queuedAt[t.id];
    if (q === undefined) continue;
    stages.push({
      admit: q - t.startedAt,
      queue: t.timing.queueMs,
      worker: t.timing.timeToFirstTokenMs - t.timing.queueMs,
      delivery: t.firstAt - q - t.timing.timeToFirstTokenMs,
    });
  }
  return { seconds, ttft, stages };
}

function summarise(samples: Sample[]): PathResult {
  const ttft = samples.flatMap((s) => s.ttft);
  const stages = samples.flatMap((s) => s.stages);
  const seconds = samples.reduce((a, s) => a + s.seconds, 0);
  const cpuMicros = samples.reduce((a, s) => a + (s.cpuMicros ?? 0), 0);
  const controllerMicros = samples.reduce((a, s) => a + (s.controllerCpuMicros ?? 0), 0);
  const worst = (f: (p: Pauses) => number) =>
    Math.max(0, ...samples.map((s) => (s.pauses ? f(s.pauses) : 0)));
  const gcMs = samples.reduce((a, s) => a + (s.pauses?.gc.totalMs ?? 0), 0);
  const mean = (k: keyof Stages) => round(stages.reduce((a, s) => a + s[k], 0) / Math.max(1, stages.length));
  const p99 = (k: keyof Stages) =>
    pct(
      stages.map((s) => s[k]),
      0.99,
    );
  return {
    requests: ttft.length,
    perSecond: Math.round(ttft.length / seconds),
    serverCpuMsPerRequest: round(cpuMicros / 1000 / Math.max(1, ttft.length)),
    controllerCpuMsPerRequest: round(controllerMicros / 1000 / Math.max(1, ttft.length)),
    controllerPauses: {
      loopP99Ms: worst((p) => p.loopDelayMs.p99),
      loopMaxMs: worst((p) => p.loopDelayMs.max),
      gcMaxMs: worst((p) => p.gc.maxMs),
      gcMsPerSecond: round(gcMs / Math.max(1e-9, seconds)),
    },
    ttftMs: { p50: pct(ttft, 0.5), p99: pct(ttft, 0.99) },
    ...(stages.length === 0
      ? {}
      : {
          stagesMs: {
            admit: mean('admit'),
            queue: mean('queue'),
            worker: mean('worker'),
            delivery: mean('delivery'),
          },
          stagesP99Ms: {
            admit: p99('admit'),
            queue: p99('queue'),
            worker: p99('worker'),
            delivery: p99('delivery'),
          },
        }),
  };
}

function request(id: string): GenerateRequest {
  return {
    model: MODEL,
    requestId: id,
    input: { $case: 'prompt', value: 'Tell me about the Rocky Mountains.' },
    maxTokens: 8,
    sampling: undefined,
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  };
}

function pct(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
