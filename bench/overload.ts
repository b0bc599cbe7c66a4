/**
 * bench:overload — the durable path offered 5x what its workers can serve (issue 5: admitted requests wait no
 * longer than the configured bound, the excess gets RESOURCE_EXHAUSTED with retry-after, controller memory
 * stays flat).
 *
 * A real controller (its own process, bench/overload-controller.ts, so its memory is its own) on a private
 * Redis, and one fake worker of known capacity: one group of `--seqs` sequences (the dispatcher's room), each
 * request streaming 8 tokens over `--service-ms`, so capacity = seqs / service time. An open loop of gRPC
 * clients offers, in one run:
 *   baseline   0.5x capacity for --seconds
 *   quiet      nothing for the shed-rate window + 1 s (the queue's dispatch-rate estimate forgets)
 *   overload   --factor x capacity (default 5) for --seconds: a burst straight after a quiet window
 * Per phase: admitted / shed / other outcomes, admitted requests' queue wait (Finished.timing.queueMs:
 * submitted -> dispatched) p50/p99/max and how many exceeded the bound (queue.maxWaitMs), the retry-after
 * hints the shed got, the service time admitted requests got (Finished.timing: total - queue; when it runs
 * longer than the queue assumed, admitted requests wait longer than it expected), and the controller's RSS and V8
 * heap sampled every second: mean of the first and last third and the least-squares slope (MiB/min), with the
 * per-request state it held.
 *
 * The queue assumes --assumed-service-ms (queue.serviceMs) until it has measured its drain: by default the
 * worker's --service-ms; `estimate` leaves it unset, so the controller's per-deployment estimate stands
 * (controller/dispatch/service-time.ts: 6 s + 256 x 175 ms here, far longer than the fake worker's).
 *
 * Usage: npm run bench:overload [-- --json] [-- --seconds 60 --factor 5 --seqs 8 --service-ms 400
 *          --max-wait-ms 2000 --assumed-service-ms 400|estimate]
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { inferenceClient } from '../cli/clients.ts';
import { RETRY_AFTER_MS } from '../common/grpc-status.ts';
import { type GenerateEvent, type InferenceClient, PriorityClass } from '../proto/gen/corral/v1/inference.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { FakeWorker } from '../test/integration/controller/fake-worker.ts';
import type { ControllerMessage } from './overload-controller.ts';

const MODEL = 'overload-model';
const TOKENS = 8;
/** The queue's dispatch-rate window (RequestQueue's default rateWindowSeconds). */
const RATE_WINDOW_MS = 10_000;
const MiB = 2 ** 20;

type Sample = Extract<ControllerMessage, { t: 'sample' }>;

interface PhaseResult {
  name: string;
  offeredPerSecond: number;
  seconds: number;
  sent: number;
  admitted: number;
  shed: number;
  other: Record<string, number>;
  /** overBound: admitted requests that waited longer than the bound; sent in which seconds of the phase. */
  waitMs: { p50: number; p99: number; max: number; overBound: number; overBoundSentAtS: [number, number] };
  /** The controller's own count of first dispatches past the bound during the phase (from its 1 s samples). */
  dispatchedPastBound: number;
  /** How long admitted requests held a sequence: dispatched -> finished. */
  serviceMs: { p50: number; p99: number; max: number };
  retryAfterMs: { min: number; p50: number; max: number; missing: number };
  memory: {
    rssMiB: { firstThird: number; lastThird: number; slopePerMin: number };
    heapMiB: { firstThird: number; lastThird: number; slopePerMin: number };
    /** Most requests the controller held in its request table / live feeds at once. */
    maxRequestsHeld: number;
    maxLiveHeld: number;
    /** The controller's CPU use over the phase, % of one core (2 shared cores: it competes with the clients). */
    cpuPercent: number;
  };
}

function options() {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      seconds: { type: 'string', default: '60' },
      factor: { type: 'string', default: '5' },
      seqs: { type: 'string', default: '8' },
      'service-ms': { type: 'string', default: '400' },
      'max-wait-ms': { type: 'string', default: '2000' },
      'assumed-service-ms': { type: 'string' },
    },
  });
  const num = (name: keyof typeof values, or = '') => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v <= 0) {
      process.stderr.write(`bench:overload: --${name} must be a positive number${or}, got ${values[name]}\n`);
      process.exit(2);
    }
    return v;
  };
  return {
    json: values.json === true,
    seconds: num('seconds'),
    factor: num('factor'),
    seqs: Math.round(num('seqs')),
    serviceMs: num('service-ms'),
    maxWaitMs: num('max-wait-ms'),
    /** queue.serviceMs; undefined: the controller's own estimate. */
    assumedServiceMs:
      values['assumed-service-ms'] === undefined
        ? num('service-ms')
        : values['assumed-service-ms'] === 'estimate'
          ? undefined
          : num('assumed-service-ms', " or 'estimate'"),
  };
}

async function main(): Promise<void> {
  const o = options();
  const progress = (msg: string) => process.stderr.write(`bench:overload ${msg}\n`);
  const capacity = o.seqs / (o.serviceMs / 1000);
  const redis = await startRedis();
  const samples: Sample[] = [];
  let child: ChildProcess | undefined;
  let worker: FakeWorker | undefined;
  let client: InferenceClient | undefined;
  try {
    const config = {
      listen: '127.0.0.1:0',
      redis: redis.url,
      // What the queue assumes until it measures: by default the fake worker's own service time.
      queue: { maxWaitMs: o.maxWaitMs, serviceMs: o.assumedServiceMs },
      deployments: [{ name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxNumSeqs: o.seqs }],
    };
    const script = fileURLToPath(new URL('./overload-controller.ts', import.meta.url));
    const proc = fork(script, [JSON.stringify(config), '1000'], { execArgv: ['--import', 'tsx'] });
    child = proc;
    const address = await new Promise<string>((resolve, reject) => {
      proc.on('message', (m: ControllerMessage) => {
        if (m.t === 'ready') resolve(m.address);
        else samples.push(m);
      });
      proc.once('exit', (code) => reject(new Error(`the controller exited (${code}) before serving`)));
    });
    worker = await FakeWorker.start(address, 'overload-n1');
    worker.script = { t: 'stream', deltas: Array(TOKENS).fill('tok '), intervalMs: o.serviceMs / TOKENS };
    await worker.register();
    client = inferenceClient(address);
    await readyReplica(client);
    const phase = async (name: string, rate: number, seconds: number) => {
      progress(`${name}: ${round(rate)} requests/s for ${seconds} s (capacity ${round(capacity)}/s)`);
      const from = Date.now();
      const r = await offer(client as InferenceClient, worker as FakeWorker, rate, seconds);
      return summarise(name, rate, r, o.maxWaitMs, window(samples, from, Date.now()));
    };
    const baseline = await phase('baseline', capacity * 0.5, o.seconds);
    progress(`quiet for ${(RATE_WINDOW_MS + 1000) / 1000} s`);
    await new Promise((r) => setTimeout(r, RATE_WINDOW_MS + 1000));
    const overload = await phase('overload', capacity * o.factor, o.seconds);
    const report = {
      bench: 'overload',
      capacityPerSecond: round(capacity),
      seqs: o.seqs,
      serviceMs: o.serviceMs,
      assumedServiceMs: o.assumedServiceMs ?? ('estimate' as const),
      maxWaitMs: o.maxWaitMs,
      phases: [baseline, overload],
    };
    if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else process.stdout.write(`${format(report.phases, capacity, o.maxWaitMs, report.assumedServiceMs)}\n`);
  } finally {
    client?.close();
    await worker?.stop();
    if (child?.connected) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.send('stop');
      await exited;
    }
    await redis.stop();
  }
}

interface Outcomes {
  sent: number;
  waits: number[];
  /** Dispatched -> finished of each admitted request (waits[i]'s). */
  services: number[];
  /** When each admitted request was sent, seconds into the phase (waits[i]'s). */
  sentAtS: number[];
  retryAfter: number[];
  shedWithoutHint: number;
  other: Record<string, number>;
  seconds: number;
}

/** An open loop of `rate` requests/s for `seconds`; resolves when every request ended. */
async function offer(c: InferenceClient, w: FakeWorker, rate: number, seconds: number): Promise<Outcomes> {
  const out: Outcomes = {
    sent: 0,
    waits: [],
    services: [],
    sentAtS: [],
    retryAfter: [],
    shedWithoutHint: 0,
    other: {},
    seconds,
  };
  const begin = performance.now();
  const pending = new Set<Promise<void>>();
  for (let i = 0; ; i++) {
    const due = begin + (i * 1000) / rate;
    if (due > begin + seconds * 1000) break;
    const now = performance.now();
    if (due > now) await new Promise((r) => setTimeout(r, due - now));
    w.calls.length = 0; // the fake keeps every call; do not let it grow for the whole run
    out.sent += 1;
    const p: Promise<void> = one(c, out, (performance.now() - begin) / 1000).finally(() => pending.delete(p));
    pending.add(p);
  }
  await Promise.all(pending);
  return out;
}

async function one(c: InferenceClient, out: Outcomes, sentAtS: number): Promise<void> {
  const call = c.generate(
    {
      model: MODEL,
      requestId: '',
      input: { $case: 'prompt', value: 'How tall is the tallest mountain?' },
      maxTokens: TOKENS,
      sampling: undefined,
      priority: 0,
      returnTokenIds: false,
      priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    },
    new Metadata(),
    { deadline: Date.now() + 120_000 },
  );
  try {
    for await (const e of call as AsyncIterable<GenerateEvent>) {
      if (e.event?.$case !== 'finished') continue;
      const timing = e.event.value.timing;
      out.waits.push(timing?.queueMs ?? Number.NaN);
      out.services.push(timing ? timing.totalMs - timing.queueMs : Number.NaN);
      out.sentAtS.push(sentAtS);
    }
  } catch (e) {
    const se = e as ServiceError;
    if (se.code === status.RESOURCE_EXHAUSTED) {
      const hint = se.metadata?.get(RETRY_AFTER_MS)[0];
      if (hint === undefined) out.shedWithoutHint += 1;
      else out.retryAfter.push(Number(hint));
      return;
    }
    const name = status[se.code] ?? String(se.code);
    out.other[name] = (out.other[name] ?? 0) + 1;
  }
}

function summarise(name: string, rate: number, r: Outcomes, maxWaitMs: number, mem: Sample[]): PhaseResult {
  const third = Math.max(1, Math.floor(mem.length / 3));
  const over = r.sentAtS.filter((_, i) => (r.waits[i] ?? 0) > maxWaitMs);
  const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  const series = (pick: (s: Sample) => number) => {
    const ys = mem.map((s) => pick(s) / MiB);
    return {
      firstThird: mean(ys.slice(0, third)),
      lastThird: mean(ys.slice(-third)),
      slopePerMin: round(
        slope(
          mem.map((s) => s.at / 60_000),
          ys,
        ),
      ),
    };
  };
  return {
    name,
    offeredPerSecond: round(rate),
    seconds: r.seconds,
    sent: r.sent,
    admitted: r.waits.length,
    shed: r.retryAfter.length + r.shedWithoutHint,
    other: r.other,
    waitMs: {
      p50: pct(r.waits, 0.5),
      p99: pct(r.waits, 0.99),
      max: pct(r.waits, 1),
      overBound: over.length,
      overBoundSentAtS: [round(Math.min(...over)), round(Math.max(...over))],
    },
    dispatchedPastBound: (mem[mem.length - 1]?.pastBound ?? 0) - (mem[0]?.pastBound ?? 0),
    serviceMs: { p50: pct(r.services, 0.5), p99: pct(r.services, 0.99), max: pct(r.services, 1) },
    retryAfterMs: {
      min: pct(r.retryAfter, 0),
      p50: pct(r.retryAfter, 0.5),
      max: pct(r.retryAfter, 1),
      missing: r.shedWithoutHint,
    },
    memory: {
      rssMiB: series((s) => s.rssBytes),
      heapMiB: series((s) => s.heapUsedBytes),
      maxRequestsHeld: Math.max(0, ...mem.map((s) => s.requests)),
      maxLiveHeld: Math.max(0, ...mem.map((s) => s.live)),
      cpuPercent: cpuPercent(mem),
    },
  };
}

function format(
  phases: PhaseResult[],
  capacity: number,
  maxWaitMs: number,
  assumedServiceMs: number | 'estimate',
): string {
  const lines = [
    `overload bench: capacity ${round(capacity)} requests/s, queue.maxWaitMs ${maxWaitMs}, queue.serviceMs ${assumedServiceMs}`,
    `${'phase'.padEnd(9)} ${'offered/s'.padStart(9)} ${'sent'.padStart(6)} ${'admit'.padStart(6)} ${'shed'.padStart(6)}  wait p50 / p99 / max ms (over bound: sent at s)   retry-after min / p50 / max ms   other`,
  ];
  for (const p of phases)
    lines.push(
      `${p.name.padEnd(9)} ${String(p.offeredPerSecond).padStart(9)} ${String(p.sent).padStart(6)} ${String(p.admitted).padStart(6)} ${String(p.shed).padStart(6)}  ${p.waitMs.p50} / ${p.waitMs.p99} / ${p.waitMs.max} (${overBound(p)})`.padEnd(
        104,
      ) +
        `${p.retryAfterMs.min} / ${p.retryAfterMs.p50} / ${p.retryAfterMs.max}${p.retryAfterMs.missing ? ` (${p.retryAfterMs.missing} without)` : ''}   ${JSON.stringify(p.other)}`,
    );
  lines.push('service time admitted requests got (dispatched -> finished), p50 / p99 / max ms:');
  for (const p of phases)
    lines.push(`  ${p.name.padEnd(9)} ${p.serviceMs.p50} / ${p.serviceMs.p99} / ${p.serviceMs.max}`);
  lines.push(
    'controller memory, MiB (first third -> last third, slope MiB/min; most requests held, live feeds):',
  );
  for (const p of phases) {
    const m = p.memory;
    lines.push(
      `  ${p.name.padEnd(9)} rss ${m.rssMiB.firstThird} -> ${m.rssMiB.lastThird} (${m.rssMiB.slopePerMin}/min)  heap ${m.heapMiB.firstThird} -> ${m.heapMiB.lastThird} (${m.heapMiB.slopePerMin}/min)  held ${m.maxRequestsHeld}, live ${m.maxLiveHeld}; CPU ${m.cpuPercent}% of a core; dispatched past the bound (its count) ${p.dispatchedPastBound}`,
    );
  }
  return lines.join('\n');
}

function overBound(p: PhaseResult): string {
  const [from, to] = p.waitMs.overBoundSentAtS;
  return p.waitMs.overBound === 0 ? '0' : `${p.waitMs.overBound}: ${from}-${to} s`;
}

async function readyReplica(c: InferenceClient): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const models = await new Promise<{ models: { readyReplicas: number }[] }>((resolve, reject) =>
      c.listModels({}, (e, r) => (e ? reject(e) : resolve(r))),
    );
    if ((models.models[0]?.readyReplicas ?? 0) > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the fake worker did not bring its engine up');
}

function window(samples: Sample[], from: number, to: number): Sample[] {
  return samples.filter((s) => s.at >= from && s.at <= to);
}

function cpuPercent(mem: Sample[]): number {
  const first = mem[0];
  const last = mem[mem.length - 1];
  if (!first || !last || last.at <= first.at) return 0;
  return round((100 * (last.cpuMs - first.cpuMs)) / (last.at - first.at));
}

/** Least-squares slope of ys over xs. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] ?? 0) - mx) * ((ys[i] ?? 0) - my);
    den += ((xs[i] ?? 0) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function pct(values: number[], q: number): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
