/**
 * bench:batch — what an offline batch costs, each figure beside a baseline measured in the same run:
 *   parse        lines/s of BatchLineParser (the HTTP parser + gateway checks per line) beside JSON.parse alone
 *   throughput   N requests as one batch (fed maxOutstanding at a time) beside the same N sent as gRPC calls
 *                with maxOutstanding in flight, through one in-process controller and the tests' fake worker
 *                (answers at once: the control plane's own cost)
 *   live heap    the most live heap (after a full collection) while a batch of N lines runs, beside one of 4N
 *                lines: flat, since the lines wait in Redis and only maxOutstanding are in flight
 *   interactive  time-to-first-token of interactive requests on an idle deployment, while a batch keeps every
 *                engine seat busy (maxNumSeqs 8), and under the same load sent at class standard: what the
 *                batch class spares them
 * Usage: npm run bench:batch [-- --json] [-- --lines 2000 --outstanding 64]
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Metadata } from '@grpc/grpc-js';
import { inferenceClient } from '../cli/clients.ts';
import { silentLogger } from '../common/log.ts';
import type { Admitted } from '../controller/admission/admission.ts';
import { BatchLineParser } from '../controller/batch/batch-line.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';
import { type GenerateEvent, type GenerateRequest, PriorityClass } from '../proto/gen/corral/v1/inference.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { FakeWorker } from '../test/integration/controller/fake-worker.ts';

const MODEL = 'bench-model';
const WHO: Admitted = { tenant: 'default', weight: 1, cls: 'batch' };

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, lines: { type: 'string' }, outstanding: { type: 'string' } },
});
const LINES = positive(values.lines, 2000, '--lines');
const OUTSTANDING = positive(values.outstanding, 64, '--outstanding');

function positive(raw: string | undefined, dflt: number, flag: string): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`${flag} must be a positive integer, got '${raw}'\n`);
    process.exit(2);
  }
  return n;
}

const line = (i: number) =>
  JSON.stringify({
    custom_id: `q-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: MODEL, max_tokens: 8, messages: [{ role: 'user', content: `Question number ${i}?` }] },
  });

function request(id: string, cls: PriorityClass): GenerateRequest {
  return {
    model: MODEL,
    requestId: id,
    input: { $case: 'chat', value: { messages: [{ role: 'user', content: `Question ${id}?` }] } },
    maxTokens: 8,
    sampling: undefined,
    priority: 0,
    returnTokenIds: false,
    priorityClass: cls,
  };
}

function measureParse(lines: string[]): { parserPerSecond: number; jsonParsePerSecond: number } {
  const config = compileControllerConfig({ deployments: [{ name: MODEL, model: 'm' }] });
  // The best of 3 timings: the first pays for the JIT, and the shared machine preempts some.
  const time = (f: () => void) => {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      f();
      best = Math.min(best, performance.now() - t0);
    }
    return lines.length / (best / 1000);
  };
  const jsonParsePerSecond = time(() => {
    for (const l of lines) JSON.parse(l);
  });
  const parserPerSecond = time(() => {
    const p = new BatchLineParser({
      batchId: 'b',
      url: '/v1/chat/completions',
      deployments: config.deployments,
    });
    lines.forEach((l, i) => {
      if (!p.parse(l, i + 1).ok) throw new Error(`line ${i + 1} refused`);
    });
  });
  return { parserPerSecond, jsonParsePerSecond };
}

async function main(): Promise<void> {
  const lines = Array.from({ length: LINES }, (_, i) => line(i));
  const parse = measureParse(lines);
  const redis = await startRedis();
  const config = compileControllerConfig({
    listen: '127.0.0.1:0',
    redis: redis.url,
    queue: { maxWaitMs: 3_600_000 },
    batch: { maxOutstanding: OUTSTANDING, pollMs: 20 },
    deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxNumSeqs: 8 }],
  });
  const controller = await startController(config, {
    log: silentLogger,
    redisPrefix: `bench-batch${process.pid}`,
  });
  const worker = await FakeWorker.start(controller.address, 'bench-n1');
  const client = inferenceClient(controller.address);
  const generate = (id: string, cls: PriorityClass) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      let first = 0;
      const call = client.generate(request(id, cls), new Metadata());
      call.on('data', (e: GenerateEvent) => {
        if (first === 0 && e.event?.$case === 'delta') first = performance.now() - t0;
      });
      call.on('error', reject);
      call.on('end', () => resolve(first));
    });
  const runBatch = async (tag: string, lines: readonly string[]) => {
    const file = await controller.batches.uploadFile(WHO, {
      filename: `${tag}.jsonl`,
      purpose: 'batch',
      content: Buffer.from(lines.join('\n')),
    });
    const b = await controller.batches.createBatch(WHO, {
      inputFileId: file.id,
      endpoint: '/v1/chat/completions',
      completionWindow: '24h',
      metadata: null,
    });
    for (;;) {
      const now = await controller.batches.getBatch(WHO, b.id);
      worker.calls.length = 0; // the fake keeps every call; do not let it grow
      if (now.status === 'completed') return now;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await worker.register();
    while (controller.registry.get('bench-n1')?.engines.length !== 1)
      await new Promise((r) => setTimeout(r, 25));

    // Throughput: the direct calls, then the batch.
    const timed = async <T>(f: () => Promise<T>) => {
      const t0 = performance.now();
      const value = await f();
      return { value, seconds: (performance.now() - t0) / 1000 };
    };
    const direct = await timed(async () => {
      let next = 0;
      await Promise.all(
        Array.from({ length: OUTSTANDING }, async () => {
          while (next < LINES) await generate(`direct-${next++}`, PriorityClass.PRIORITY_CLASS_BATCH);
        }),
      );
      worker.calls.length = 0;
    });
    const batch = await timed(() => runBatch('throughput', lines));
    const done = batch.value;
    const directPerSecond = LINES / direct.seconds;
    const batchPerSecond = LINES / batch.seconds;
    if (done.counts.completed !== LINES)
      throw new Error(`batch completed ${done.counts.completed} of ${LINES}`);

    // Interactive TTFT: alone, then while a batch runs.
    const interactive = async (tag: string) => {
      const ttft: number[] = [];
      for (let i = 0; i < 100; i++)
        ttft.push(await generate(`${tag}-${i}`, PriorityClass.PRIORITY_CLASS_INTERACTIVE));
      return { p50: pct(ttft, 0.5), p99: pct(ttft, 0.99) };
    };
    const idle = await interactive('idle');
    const running = runBatch('load', lines);
    await new Promise((r) => setTimeout(r, 200)); // the batch's first lines fill the seats
    const loaded = await interactive('loaded');
    await running;
    // The same load as standard-class requests (what the batch would be without its class): the comparison.
    let stop = false;
    let seq = 0;
    const standardLoad = Promise.all(
      Array.from({ length: OUTSTANDING }, async () => {
        while (!stop) await generate(`std-${seq++}`, PriorityClass.PRIORITY_CLASS_STANDARD);
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    const underStandard = await interactive('under-standard');
    stop = true;
    await standardLoad;
    worker.calls.length = 0;

    // Flat memory: a batch 4x as long holds no more (its lines stay in Redis, maxOutstanding in flight).
    const short = await withLiveHeap(() => runBatch('short', lines));
    const long = await withLiveHeap(() =>
      runBatch(
        'long',
        Array.from({ length: 4 * LINES }, (_, i) => line(i)),
      ),
    );

    const result = {
      lines: LINES,
      maxOutstanding: OUTSTANDING,
      parse: { ...round(parse), ratio: round(parse.parserPerSecond / parse.jsonParsePerSecond) },
      throughput: {
        batchPerSecond: round(batchPerSecond),
        directPerSecond: round(directPerSecond),
        ratio: round(batchPerSecond / directPerSecond),
      },
      liveHeapMiB: {
        batch: short.liveHeapMiB === null ? null : round(short.liveHeapMiB),
        batch4x: long.liveHeapMiB === null ? null : round(long.liveHeapMiB),
      },
      interactiveTtftMs: {
        idle: round(idle),
        duringBatch: round(loaded),
        duringStandardLoad: round(underStandard),
        p50RatioBatchToStandard: round(loaded.p50 / underStandard.p50),
      },
    };
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      process.stdout.write(
        [
          `bench:batch  ${LINES} lines, ${OUTSTANDING} outstanding`,
          `parse        ${fmt(parse.parserPerSecond)} lines/s  (JSON.parse alone ${fmt(parse.jsonParsePerSecond)}/s, ratio ${result.parse.ratio})`,
          `throughput   batch ${fmt(batchPerSecond)} req/s  direct gRPC ${fmt(directPerSecond)} req/s  ratio ${result.throughput.ratio}`,
          `live heap    batch of ${LINES} lines +${result.liveHeapMiB.batch} MiB  of ${4 * LINES} lines +${result.liveHeapMiB.batch4x} MiB (most held after a collection)`,
          `interactive  TTFT p50/p99 ms: idle ${pair(idle)}  during the batch ${pair(loaded)}  during the same load at class standard ${pair(underStandard)}  (p50 batch/standard ${result.interactiveTtftMs.p50RatioBatchToStandard})`,
          '',
        ].join('\n'),
      );
  } finally {
    client.close();
    await worker.stop();
    await controller.stop(1000);
    await redis.stop();
  }
}

/**
 * Runs f; its duration and the most live heap it held above the live heap before: every 250 ms a full
 * collection, then heapUsed (garbage not yet collected is not memory the batch keeps). Without node
 * --expose-gc (the npm script passes it) the figure is null.
 */
async function withLiveHeap<T>(
  f: () => Promise<T>,
): Promise<{ value: T; seconds: number; liveHeapMiB: number | null }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  const sampler = setInterval(() => {
    gc?.();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 250);
  const t0 = performance.now();
  try {
    const value = await f();
    return {
      value,
      seconds: (performance.now() - t0) / 1000,
      liveHeapMiB: gc ? (peak - base) / 2 ** 20 : null,
    };
  } finally {
    clearInterval(sampler);
  }
}

function pct(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function round<T>(x: T): T {
  if (typeof x === 'number') return (Math.round(x * 100) / 100) as T;
  return Object.fromEntries(Object.entries(x as object).map(([k, v]) => [k, round(v)])) as T;
}

function pair(x: { p50: number; p99: number }): string {
  return `${round(x.p50)}/${round(x.p99)}`;
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:batch failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
