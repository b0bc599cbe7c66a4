/**
 * The durable path end to end, for bench/queue.ts: time-to-first-token through a real controller (gateway ->
 * Redis queue -> dispatcher -> Worker.Generate -> stream log -> gateway) beside the same clients calling the
 * worker directly (the direct-dispatch baseline: what a request costs without controller, queue or log).
 * The worker is the tests' fake (test/integration/controller/fake-worker.ts): it streams its canned deltas at
 * once, so the figures are the control plane's own cost, not an engine's. `concurrency` clients run a closed
 * loop (send, read to the end, send again) for `seconds`; TTFT = call started -> first delta received.
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
  direct: PathResult;
  durable: PathResult;
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
    const directRun = await closedLoop(o, () => {
      worker.calls.length = 0; // the fake keeps every call; do not let it grow for the whole run
      return direct.generate({ engineId, request: request(`d${seq++}`) }, new Metadata());
    });
    const durableRun = await closedLoop(o, () => {
      worker.calls.length = 0;
      return gateway.generate(request(`q${seq++}`), new Metadata());
    });
    return {
      direct: directRun,
      durable: durableRun,
      addedTtftMs: {
        p50: round(durableRun.ttftMs.p50 - directRun.ttftMs.p50),
        p99: round(durableRun.ttftMs.p99 - directRun.ttftMs.p99),
      },
    };
  } finally {
    gateway.close();
    direct.close();
    await worker.stop();
    await controller.stop(1000);
  }
}

async function closedLoop(
  o: { concurrency: number; seconds: number },
  call: () => AsyncIterable<GenerateEvent> & { cancel(): void },
): Promise<PathResult> {
  const ttft: number[] = [];
  const endAt = performance.now() + o.seconds * 1000;
  const begin = performance.now();
  const client = async () => {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      let first = true;
      for await (const e of call()) {
        if (first && e.event?.$case === 'delta') {
          ttft.push(performance.now() - t0);
          first = false;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
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
