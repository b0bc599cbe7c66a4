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
 */
import { performance } from 'node:perf_hooks';
import { credentials, Metadata } from '@grpc/grpc-js';
import { inferenceClient } from '../cli/clients.ts';
import { silentLogger } from '../common/log.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';
import { type GenerateEvent, type GenerateRequest, PriorityClass } from '../proto/gen/corral/v1/inference.ts';
import { WorkerClient } from '../proto/gen/corral/v1/worker.ts';
import { FakeWorker } from '../test/integration/controller/fake-worker.ts';

const MODEL = 'bench-model';

export interface PathResult {
  requests: number;
  perSecond: number;
  ttftMs: { p50: number; p99: number };
}

export interface EndToEnd {
  saturated: { direct: PathResult; durable: PathResult };
  pacedRatePerSecond: number;
  paced: { direct: PathResult; durable: PathResult };
  /** Paced: durable TTFT minus direct TTFT. */
  addedTtftMs: { p50: number; p99: number };
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
    const viaController = () => {
      worker.calls.length = 0;
      return gateway.generate(request(`q${seq++}`), new Metadata());
    };
    const saturated = { direct: await load(o, viaWorker), durable: await load(o, viaController) };
    const rate = Math.max(1, Math.round(saturated.durable.perSecond / 2));
    const paced = {
      direct: await load({ ...o, rate }, viaWorker),
      durable: await load({ ...o, rate }, viaController),
    };
    return {
      saturated,
      pacedRatePerSecond: rate,
      paced,
      addedTtftMs: {
        p50: round(paced.durable.ttftMs.p50 - paced.direct.ttftMs.p50),
        p99: round(paced.durable.ttftMs.p99 - paced.direct.ttftMs.p99),
      },
    };
  } finally {
    gateway.close();
    direct.close();
    await worker.stop();
    await controller.stop(1000);
  }
}

/** Closed loop of `concurrency` clients, or with `rate` an open loop of that many calls/s. */
async function load(
  o: { concurrency: number; seconds: number; rate?: number },
  call: () => AsyncIterable<GenerateEvent>,
): Promise<PathResult> {
  const ttft: number[] = [];
  const begin = performance.now();
  const endAt = begin + o.seconds * 1000;
  const one = async () => {
    const t0 = performance.now();
    let first = true;
    for await (const e of call()) {
      if (first && e.event?.$case === 'delta') {
        ttft.push(performance.now() - t0);
        first = false;
      }
    }
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
  const seconds = (performance.now() - begin) / 1000;
  return {
    requests: ttft.length,
    perSecond: Math.round(ttft.length / seconds),
    ttftMs: { p50: pct(ttft, 0.5), p99: pct(ttft, 0.99) },
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
