/**
 * The durable path end to end, for bench/queue.ts: time-to-first-token through a real controller (gateway ->
 * Redis queue -> dispatcher -> Worker.Generate -> stream log -> gateway) beside the same clients calling the
 * worker directly (the direct-dispatch baseline: what a request costs without controller, queue or log).
 * The worker is the tests' fake (test/integration/controller/fake-worker.ts): it streams its canned deltas at
 * once, so the figures are the control plane's own cost, not an engine's. Two loads, each on both paths:
 *   saturated  `concurrency` clients in a closed loop (send, read to the end, send again) for `seconds`: the
 *              requests/s each path sustains; TTFT there is mostly waiting for a CPU (everything, clients
 *              included, shares this one process)
 *   paced      an open loop at half the durable path's saturated rate (at most `concurrency` in flight): what
 *              the durable path adds to TTFT when it is not the bottleneck
 * TTFT = call started -> first delta received.
 * The durable path runs twice on the same controller, in alternating rounds so the shared machine's noise
 * falls on both: `log` with the in-process hand-off off (every event read back from the stream log, the
 * dispatcher woken by the queue's PUBLISH: the path before LiveFeed) and `live` as it ships. Each durable
 * request's Finished.timing splits its TTFT (means, ms clock): admit (call -> queued), queue (queued ->
 * dispatched), worker (dispatched -> first token at the dispatcher), delivery (-> the client has it).
 */
import { performance } from 'node:perf_hooks';
import { credentials, Metadata } from '@grpc/grpc-js';
import { inferenceClient } from '../cli/clients.ts';
import { silentLogger } from '../common/log.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';
import type { Lane } from '../controller/gateway/request-path.ts';
import { type GenerateEvent, type GenerateRequest, PriorityClass } from '../proto/gen/corral/v1/inference.ts';
import { WorkerClient } from '../proto/gen/corral/v1/worker.ts';
import { FakeWorker } from '../test/integration/controller/fake-worker.ts';

const MODEL = 'bench-model';

export interface PathResult {
  requests: number;
  perSecond: number;
  ttftMs: { p50: number; p99: number };
  /** Durable path only: where its TTFT went, means in ms (see the top of this file). */
  stagesMs?: { admit: number; queue: number; worker: number; delivery: number };
}

type Durable = { log: PathResult; live: PathResult };

export interface EndToEnd {
  saturated: { direct: PathResult; durable: Durable };
  pacedRatePerSecond: number;
  paced: { direct: PathResult; durable: Durable };
  /** Paced: durable TTFT minus direct TTFT, without and with the in-process hand-off. */
  addedTtftMs: { log: { p50: number; p99: number }; live: { p50: number; p99: number } };
}

export async function measureEndToEnd(
  redisUrl: string,
  o: { concurrency: number; seconds: number },
): Promise<EndToEnd> {
  const config = compileControllerConfig({
    listen: '127.0.0.1:0',
    redis: redisUrl,
    deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxNumSeqs: 4 * o.concurrency }],
  });
  const controller = await startController(config, { log: silentLogger, redisPrefix: `bench${process.pid}` });
  const worker = await FakeWorker.start(controller.address, 'bench-n1');
  const gateway = inferenceClient(controller.address);
  const direct = new WorkerClient(worker.address, credentials.createInsecure());
  try {
    await worker.register();
    for (let i = 0; controller.registry.get('bench-n1')?.engines.length !== 1; i++) {
      if (i > 200) throw new Error('the fake worker did not report its engine');
      await new Promise((r) => setTimeout(r, 25));
    }
    const engineId = controller.registry.get('bench-n1')?.engines[0]?.engineId ?? '';
    let seq = 0;
    const viaWorker = () => {
      worker.calls.length = 0; // the fake keeps every call; do not let it grow for the whole run
      return direct.generate({ engineId, request: request(`d${seq++}`) }, new Metadata());
    };
    const lane = controller.lanes.lanes.get(MODEL) as Lane;
    // When the gateway submitted each request (the queue's submittedAt, on a finer clock): splits admit/queue.
    const submittedAt = new Map<string, number>();
    const submit = lane.queue.submit.bind(lane.queue);
    lane.queue.submit = (req) => {
      submittedAt.set(req.id, performance.now());
      return submit(req);
    };
    const viaController: Call = () => {
      worker.calls.length = 0;
      const id = `q${seq++}`;
      const stream = gateway.generate(request(id), new Metadata());
      return { stream, submittedAt: () => submittedAt.get(id), forget: () => submittedAt.delete(id) };
    };
    const handOff = { live: lane.live, wake: lane.wake };
    const durable = async (o2: LoadOptions): Promise<Durable> => {
      const rounds = { log: [] as Sample[], live: [] as Sample[] };
      const slice = { ...o2, seconds: o2.seconds / ROUNDS };
      for (let r = 0; r < ROUNDS; r++) {
        for (const variant of ['log', 'live'] as const) {
          lane.live = variant === 'live' ? handOff.live : undefined;
          lane.wake = variant === 'live' ? handOff.wake : undefined;
          rounds[variant].push(await sample(slice, viaController));
        }
      }
      return { log: summarise(rounds.log), live: summarise(rounds.live) };
    };
    const saturated = { direct: summarise([await sample(o, viaWorker)]), durable: await durable(o) };
    const rate = Math.max(1, Math.round(saturated.durable.log.perSecond / 2));
    const paced = {
      direct: summarise([await sample({ ...o, rate }, viaWorker)]),
      durable: await durable({ ...o, rate }),
    };
    const added = (d: PathResult) => ({
      p50: round(d.ttftMs.p50 - paced.direct.ttftMs.p50),
      p99: round(d.ttftMs.p99 - paced.direct.ttftMs.p99),
    });
    return {
      saturated,
      pacedRatePerSecond: rate,
      paced,
      addedTtftMs: { log: added(paced.durable.log), live: added(paced.durable.live) },
    };
  } finally {
    gateway.close();
    direct.close();
    await worker.stop();
    await controller.stop(1000);
  }
}

/** Rounds each durable variant's time is cut into (alternating with the other variant). */
const ROUNDS = 4;

interface LoadOptions {
  concurrency: number;
  seconds: number;
  rate?: number;
}

type Call = () =>
  | AsyncIterable<GenerateEvent>
  | { stream: AsyncIterable<GenerateEvent>; submittedAt: () => number | undefined; forget: () => void };

interface Sample {
  seconds: number;
  ttft: number[];
  stages: { admit: number; queue: number; worker: number; delivery: number }[];
}

/** Closed loop of `concurrency` clients, or with `rate` an open loop of that many calls/s. */
async function sample(o: LoadOptions, call: Call): Promise<Sample> {
  const ttft: number[] = [];
  const stages: Sample['stages'] = [];
  const begin = performance.now();
  const endAt = begin + o.seconds * 1000;
  const one = async () => {
    const t0 = performance.now();
    const c = call();
    const traced = Symbol.asyncIterator in c ? undefined : c;
    let firstAt: number | undefined;
    for await (const e of traced?.stream ?? (c as AsyncIterable<GenerateEvent>)) {
      if (firstAt === undefined && e.event?.$case === 'delta') {
        firstAt = performance.now();
        ttft.push(firstAt - t0);
      }
      const timing = e.event?.$case === 'finished' ? e.event.value.timing : undefined;
      const queuedAt = traced?.submittedAt();
      // The controller's timings count from the queue's submittedAt, in whole ms.
      if (timing && firstAt !== undefined && queuedAt !== undefined)
        stages.push({
          admit: queuedAt - t0,
          queue: timing.queueMs,
          worker: timing.timeToFirstTokenMs - timing.queueMs,
          delivery: firstAt - queuedAt - timing.timeToFirstTokenMs,
        });
    }
    traced?.forget();
  };
  if (o.rate === undefined) {
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
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
  return { seconds: (performance.now() - begin) / 1000, ttft, stages };
}

function summarise(samples: Sample[]): PathResult {
  const ttft = samples.flatMap((s) => s.ttft);
  const stages = samples.flatMap((s) => s.stages);
  const seconds = samples.reduce((a, s) => a + s.seconds, 0);
  const mean = (k: keyof Sample['stages'][number]) =>
    round(stages.reduce((a, s) => a + s[k], 0) / Math.max(1, stages.length));
  return {
    requests: ttft.length,
    perSecond: Math.round(ttft.length / seconds),
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
