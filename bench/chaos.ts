/**
 * The chaos run: the durable request path's promise checked under SIGKILLs, from the clients' side.
 *   npm run chaos -- [--requests 500] [--concurrency 96] [--rate 12] [--seed 1] [--json] [--keep-logs]
 *
 * A local cluster (Redis with appendfsync always, 2 controller replicas, 3 single-GPU simulated nodes serving 2
 * groups of Llama 3.1 8B TP1, plus the spare a lost group is rebuilt on; an API key) takes streamed requests
 * arriving at --rate per second. While they stream: the node running a group's rank 0 is SIGKILLed (at 20% of
 * the submissions), then the controller replica leading the reconciler (45%), then Redis, restarted from its
 * AOF (70%). Clients only know their request ids: a broken stream is resumed on the other controller
 * (client/durable-generate.ts).
 *
 * Every request must end completed or with an explicit error: `lost` (neither), `token_gaps`,
 * `token_duplicates` and `text_mismatches` (tokens that differ from the undisturbed run of the same seed and
 * prompt) must be 0; the exit code is 1 otherwise. Bad flags exit 2.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '../cli/local-api-key.ts';
import { LocalCluster, type WorkerSpec } from '../cli/local-cluster.ts';
import { CorralClient } from '../client/corral-client.ts';
import { fork, seededRandom } from '../sim/cluster/random.ts';
import { parseChaosArgs } from './chaos/chaos-args.ts';
import { type FaultKind, type FaultRecord, injectFault } from './chaos/chaos-faults.ts';
import { chaosRequests, runLoad } from './chaos/chaos-load.ts';
import { streamStall, type Tracked, textMismatches } from './chaos/chaos-metrics.ts';
import { summarize } from './chaos/stream-audit.ts';

const parsed = parseChaosArgs(process.argv.slice(2));
if (parsed.t === 'error') {
  process.stderr.write(`chaos: ${parsed.message}\n`);
  process.exit(2);
}
const args = parsed.args;

const MODEL = 'llama-3.1-8b-instruct';
/** 2 groups of one GPU each; the third node is the spare a lost group is rebuilt on. */
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 2
    gpusPerReplica: 1
    maxModelLen: 4096
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '50']
`;
const WORKERS: WorkerSpec[] = [1, 2, 3].map((i) => ({ nodeName: `node-${i}`, gpus: 1, gpuType: 'h100-80g' }));
/** Fault k fires once this fraction of the requests has been submitted. */
const SCHEDULE: [FaultKind, number][] = [
  ['worker', 0.2],
  ['controller', 0.45],
  ['redis', 0.7],
];
/** After the last submission, how long the run waits for open requests before calling them lost. */
const DRAIN_MS = 90_000;
/** No request ended for this long: the open ones hang (lost); stop waiting (arrivals may be blocked on them). */
const STALL_MS = 60_000;

const progress = (line: string) => process.stderr.write(`  ${line}\n`);
const dir = mkdtempSync(join(tmpdir(), 'corral-chaos-'));
const apiKey = newApiKey();
let cluster: LocalCluster | undefined;
let clients: CorralClient[] = [];
let exitCode = 0;
try {
  cluster = await LocalCluster.start({
    dir,
    config: CONFIG,
    controllers: 2,
    workers: WORKERS,
    appendfsync: 'always',
    auth: { apiKey },
    env: { CORRAL_LOG_LEVEL: 'info' },
    onProgress: progress,
  });
  await cluster.waitReady(90_000);
  const running = cluster;
  // One attempt per call: generateDurably moves to the other replica instead of retrying a dead one.
  clients = running.controllers.map((c) => new CorralClient({ address: c.grpc, apiKey, maxAttempts: 1 }));

  const random = seededRandom(args.seed);
  const requests = chaosRequests(args.requests, fork(random), args.seed);
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const abandon = new AbortController();
  // Every open request's call listens to it (up to --concurrency at once): not a leak.
  setMaxListeners(args.concurrency * 4 + 16, abandon.signal);
  // Faults one after another: each waits until the cluster serves as before the previous one (the dead
  // process may still be restarting).
  const faults: Promise<FaultRecord>[] = [];
  const restores: Promise<void>[] = [];
  let previous: Promise<unknown> = Promise.resolve();
  const faultContext = { cluster: running, deployment: MODEL, workers: WORKERS, now, progress };
  const triggers = new Map(SCHEDULE.map(([kind, at]) => [Math.max(1, Math.ceil(at * args.requests)), kind]));
  let drainTimer: NodeJS.Timeout | undefined;
  let lastEnd = now();
  const stallWatch = setInterval(() => {
    if (now() - lastEnd < STALL_MS || abandon.signal.aborted) return;
    progress(`no request ended for ${STALL_MS / 1000} s: the open ones are lost`);
    abandon.abort();
  }, 1000);
  progress(`${args.requests} streamed requests at ${args.rate}/s, at most ${args.concurrency} in flight`);
  const tracked = await runLoad({
    model: MODEL,
    replicas: clients,
    requests,
    concurrency: args.concurrency,
    rate: args.rate,
    random: fork(random),
    now,
    abandon: abandon.signal,
    onEnded: () => {
      lastEnd = now();
    },
    onSubmitted: (n) => {
      if (n % 100 === 0) progress(`${n} submitted at ${(now() / 1000).toFixed(1)} s`);
      if (n === args.requests) drainTimer = setTimeout(() => abandon.abort(), DRAIN_MS);
      const kind = triggers.get(n);
      if (!kind) return undefined;
      const injected = previous.then(() => injectFault(kind, faultContext));
      const recovered = injected.then((f) => f.recovered);
      const restored = injected.then((f) => f.restored);
      // Observed by Promise.all below; meanwhile no unhandled rejection may end the run before it stops the cluster.
      for (const p of [recovered, restored]) p.catch(() => {});
      faults.push(recovered);
      restores.push(restored);
      previous = recovered;
      // Arrivals go on once the fault is in (at once, unless the previous one is still recovering).
      return injected.then(() => undefined);
    },
  });
  clearTimeout(drainTimer);
  clearInterval(stallWatch);
  const report = buildReport(tracked, await Promise.all(faults), now());
  await Promise.all(restores);
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(humanReport(report));
  if (report.lost + report.token_gaps + report.token_duplicates + report.text_mismatches > 0) exitCode = 1;
} catch (e) {
  process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  exitCode = 1;
} finally {
  for (const c of clients) c.close();
  await cluster?.stop();
  if (exitCode === 0 && !args.keepLogs) rmSync(dir, { recursive: true, force: true });
  else process.stderr.write(`  logs of every process kept in ${dir}/logs\n`);
}
process.exit(exitCode);

type Report = ReturnType<typeof buildReport>;

function buildReport(tracked: Tracked[], faults: FaultRecord[], durationMs: number) {
  const s = summarize(tracked.map((t) => t.audit.result()));
  // A request never submitted (the run was abandoned first) is lost too: it was promised and not served.
  const notSubmitted = args.requests - tracked.length;
  return {
    requests: args.requests,
    completed: s.completed,
    failed_with_error: s.failed_with_error,
    lost: s.lost + notSubmitted,
    token_gaps: s.token_gaps,
    token_duplicates: s.token_duplicates,
    text_mismatches: tracked.reduce((n, t) => n + textMismatches(t), 0),
    resumes: s.resumes,
    generate_retries: tracked.reduce((n, t) => n + t.retries, 0),
    tokens: tracked.reduce((n, t) => n + t.audit.result().tokens, 0),
    errors: s.errors,
    faults: faults.map((f) => {
      const stall = streamStall(tracked, f.at);
      return {
        what: f.what,
        at_s: round(f.at / 1000),
        recovery_s: round(stall.longestMs / 1000),
        streams_hit: stall.hit,
        detail: f.detail,
      };
    }),
    duration_s: round(durationMs / 1000),
  };
}

function humanReport(r: Report): string {
  const lines = [
    `chaos run: ${r.requests} streamed requests, ${r.duration_s} s, ${r.tokens} tokens`,
    `  completed ${r.completed}   failed with an error ${r.failed_with_error}   lost ${r.lost}`,
    `  token gaps ${r.token_gaps}   duplicates ${r.token_duplicates}   tokens unlike the undisturbed run ${r.text_mismatches}`,
    `  resumed on the other controller ${r.resumes}   Generate retried there ${r.generate_retries}`,
    '',
    '  AT s    STREAMS HIT  LONGEST STALL s  FAULT',
    ...r.faults.map(
      (f) =>
        `  ${String(f.at_s).padEnd(7)} ${String(f.streams_hit).padEnd(12)} ${String(f.recovery_s).padEnd(16)} ${f.what}\n${' '.repeat(40)}${f.detail}`,
    ),
  ];
  const errors = Object.entries(r.errors);
  if (errors.length > 0) lines.push('', '  errors:', ...errors.map(([e, n]) => `    ${n}x ${e}`));
  return `${lines.join('\n')}\n`;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
