/**
 * bench:routing — routing policies compared in the cluster simulator (issue 6), on 8 groups of Llama 3.1 405B
 * FP8 TP8 on H100 (KV from common/hardware, step times from the calibrated latency model), plus the cost of the
 * production scheduler.pick with 1,000 groups and the simulator's speed with 64 groups.
 *
 *   workloads   shared_prefix, no_reuse, zipf at 80% of capacity (capacity = what the oracle completes when
 *               offered twice the nominal rate, measured in this run), every policy on identical traffic
 *   plots       bench/out/routing-ttft-cdf.svg           TTFT CDF per policy, shared_prefix at 80%
 *               bench/out/routing-throughput-vs-load.svg output tok/s against offered load, shared_prefix
 *               bench/out/routing-p90-vs-load.svg        p90 TTFT against offered load, shared_prefix
 *   pick        p99 of one pick() call with 1,000 groups; baseline: the same pick without block hashes
 *   speed       virtual seconds simulated per wall second, 64 groups (512 GPUs) of shared_prefix at 80%: the
 *               median of 5 runs by wall time, each run's wall and CPU time (both threads) printed
 *
 * Every simulation takes its prompts from one prompt thread (sim/cluster/prompt-thread.ts: built ahead on a
 * second core, the same results), started before the first and warmed by the comparisons before the timed runs.
 *
 *   --extra     also multi-turn chat, long-document QA and bursty arrivals (fixed rates, every policy)
 *   --trace F   also replay a Mooncake-format JSONL trace (timestamp ms, input_length, output_length, hash_ids)
 *
 * Usage: npm run bench:routing [-- --json] [-- --seconds 120 --no-sweep --extra --trace FILE]
 * With --json the last line of stdout is {"workloads": {...}, "pick_p99_us_1000_groups", "sim_speed_x_real_time"}.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { runClusterSim } from '../sim/cluster/cluster-sim.ts';
import { groupShape, LLAMA_405B_FP8_TP8_H100 } from '../sim/cluster/group-shape.ts';
import { PromptThread } from '../sim/cluster/prompt-thread.ts';
import {
  buildWorkload,
  compare,
  compareOn,
  extraWorkloads,
  makeRouter,
  POLICY_NAMES,
  type PolicyName,
  type SuiteOptions,
  sweep,
  WORKLOAD_NAMES,
  type WorkloadName,
  type WorkloadReport,
} from '../sim/cluster/routing-suite.ts';
import type { RunSummary } from '../sim/cluster/summary.ts';
import { cdfPoints, lineChart } from '../sim/cluster/svg-plot.ts';
import type { Workload } from '../sim/cluster/workload.ts';
import { parseTrace } from '../sim/cluster/workloads/trace.ts';
import { CALIBRATION_DIR, loadCalibration } from '../sim/engine/calibration.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from '../sim/engine/model/latency-model.ts';
import { benchPick } from './routing-pick.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '120' },
    'no-sweep': { type: 'boolean', default: false },
    extra: { type: 'boolean', default: false },
    trace: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});
const progress = (line: string) => process.stderr.write(`  ${line}\n`);
const seconds = Number(args.seconds);
const seed = Number(args.seed);
// Capacity and targets need a steady state after the ramp (a sixth of the run): shorter runs mislead.
if (!Number.isFinite(seconds) || seconds < 60) {
  process.stderr.write(`bench:routing: --seconds must be a number >= 60, got ${args.seconds}\n`);
  process.exit(2);
}
if (!Number.isInteger(seed)) {
  process.stderr.write(`bench:routing: --seed must be an integer, got ${args.seed}\n`);
  process.exit(2);
}

const cal = loadCalibration(CALIBRATION_DIR, 'llama-3.1-405b', 8, 'h100-80g');
const latency = new LatencyModel(cal.data, { tp: 8, pp: 1, fp8: true, ...DEFAULT_LATENCY_PARAMS });
const shape = groupShape(LLAMA_405B_FP8_TP8_H100);
const promptThread = await PromptThread.start();
const suite: SuiteOptions = {
  latency,
  shape,
  groups: 8,
  seconds,
  seed,
  prompts: promptThread,
  onProgress: progress,
};
progress(
  `405B FP8 TP8 H100 groups: ${shape.numBlocks.toLocaleString('en-US')} KV blocks, calibration ${cal.file}`,
);

// First, on a clean heap: the simulations below leave garbage whose collection would land in its timings.
const pickBench = benchPick(1000);
progress(`pick() with 1,000 groups: p50 ${pickBench.p50Us} us, p99 ${pickBench.p99Us} us`);

const LOAD = 0.8;
const reports = {} as Record<WorkloadName, WorkloadReport>;
for (const w of WORKLOAD_NAMES) reports[w] = compare(w, LOAD, suite);

const sweepPolicies: PolicyName[] = ['round_robin', 'least_outstanding', 'corral', 'oracle'];
const fractions = [0.4, 0.6, 0.8, 1.0, 1.2];
const points = args['no-sweep']
  ? []
  : sweep('shared_prefix', fractions, sweepPolicies, reports.shared_prefix.capacityReqPerS, suite);

const others: Workload[] = args.extra ? extraWorkloads(suite) : [];
if (args.trace !== undefined)
  others.push(parseTrace(readFileSync(args.trace, 'utf8'), { name: `trace ${args.trace}` }));
const otherReports = others.map((w) => ({ w, policies: compareOn(w, suite) }));

// The simulator's speed at 64 groups: the same workload shape, tenants and rate scaled by 8. The median of five
// runs by wall time (the machine is shared: one run can land beside someone's burst), each on a workload built
// afresh outside the timed region (the simulator's input, as a trace would be); all the simulation is timed.
const big: SuiteOptions = { ...suite, groups: 64, seconds: Math.min(suite.seconds, 60) };
const SPEED_RUNS = 5;
const speedRuns = Array.from({ length: SPEED_RUNS }, (_, i) => {
  const workload = buildWorkload('shared_prefix', LOAD * 8 * reports.shared_prefix.capacityReqPerS, big);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const run = runClusterSim({
    groups: 64,
    shape,
    latency,
    router: makeRouter('corral', shape),
    workload,
    seed: 7,
    drainMs: 30_000,
    prompts: promptThread,
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  progress(
    `speed run ${i + 1}/${SPEED_RUNS}: 64 groups, prompts on the prompt thread, ${workload.requests.length} ` +
      `requests, ${run.steps} engine steps ` +
      `(${run.stretchSteps} in decode stretches), ${(run.endMs / 1000).toFixed(0)} s simulated in ` +
      `${(wallMs / 1000).toFixed(2)} s wall (${Math.round(run.endMs / wallMs)}x real time), ` +
      `${(cpuMs / 1000).toFixed(2)} s CPU of both threads (${Math.round(run.endMs / cpuMs)}x per CPU second)`,
  );
  return { simulatedMs: run.endMs, wallMs, cpuMs };
});
await promptThread.close();
const speedRun = [...speedRuns].sort((a, b) => a.wallMs - b.wallMs)[
  SPEED_RUNS >> 1
] as (typeof speedRuns)[number];
const speed = speedRun.simulatedMs / speedRun.wallMs;
progress(
  `speed: median of ${SPEED_RUNS} runs ${Math.round(speed)}x real time, load average ` +
    `${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} on ${availableParallelism()} cores`,
);

mkdirSync('bench/out', { recursive: true });
const sp = reports.shared_prefix;
const plots = {
  'routing-ttft-cdf.svg': lineChart({
    title: `TTFT CDF, shared prefix at ${LOAD * 100}% of capacity (8 x 405B FP8 TP8 H100)`,
    xLabel: 'time to first token (s, log)',
    yLabel: 'fraction of requests',
    logX: true,
    series: POLICY_NAMES.map((p) => ({ name: p, points: cdfPoints(sp.ttfts[p]) })),
  }),
  'routing-throughput-vs-load.svg': lineChart({
    title: 'Output throughput against offered load, shared prefix',
    xLabel: 'offered load (fraction of capacity)',
    yLabel: 'output tokens/s',
    series: sweepPolicies.map((p) => ({
      name: p,
      points: points.filter((x) => x.policy === p).map((x) => [x.loadFraction, x.outputTokS] as const),
    })),
  }),
  'routing-p90-vs-load.svg': lineChart({
    title: 'p90 TTFT against offered load, shared prefix',
    xLabel: 'offered load (fraction of capacity)',
    yLabel: 'p90 TTFT (s)',
    series: sweepPolicies.map((p) => ({
      name: p,
      points: points.filter((x) => x.policy === p).map((x) => [x.loadFraction, x.p90TtftS] as const),
    })),
  }),
};
for (const [file, svg] of Object.entries(plots)) writeFileSync(join('bench/out', file), svg);

const FIELDS = ['p50_ttft_s', 'p90_ttft_s', 'p99_ttft_s', 'output_tok_s', 'max_over_mean_load'] as const;
const json = {
  workloads: Object.fromEntries(
    WORKLOAD_NAMES.map((w) => [
      w,
      Object.fromEntries(
        POLICY_NAMES.map((p) => [p, Object.fromEntries(FIELDS.map((f) => [f, reports[w].policies[p][f]]))]),
      ),
    ]),
  ),
  pick_p99_us_1000_groups: pickBench.p99Us,
  sim_speed_x_real_time: Math.round(speed),
};

if (args.json) {
  process.stdout.write(`${JSON.stringify(json)}\n`);
} else {
  const out: string[] = [];
  const table = (policies: Record<PolicyName, RunSummary>) => {
    out.push(
      `${'policy'.padEnd(18)}${'p50 s'.padStart(9)}${'p90 s'.padStart(9)}${'p99 s'.padStart(9)}${'tok/s'.padStart(9)}` +
        `${'max/mean'.padStart(10)}${'hit rate'.padStart(10)}${'unfin.'.padStart(8)}  reasons`,
    );
    for (const p of POLICY_NAMES) {
      const s = policies[p];
      const reasons = Object.entries(s.reasons)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
      out.push(
        `${p.padEnd(18)}${String(s.p50_ttft_s).padStart(9)}${String(s.p90_ttft_s).padStart(9)}` +
          `${String(s.p99_ttft_s).padStart(9)}${String(s.output_tok_s).padStart(9)}` +
          `${String(s.max_over_mean_load).padStart(10)}${String(s.prefix_hit_rate).padStart(10)}` +
          `${String(s.unfinished).padStart(8)}  ${reasons}`,
      );
    }
  };
  for (const w of WORKLOAD_NAMES) {
    const r = reports[w];
    out.push(
      `\n${w}: offered ${r.offeredReqPerS.toFixed(2)} req/s = ${LOAD * 100}% of capacity ${r.capacityReqPerS.toFixed(2)} req/s`,
    );
    table(r.policies);
  }
  for (const { w, policies } of otherReports) {
    out.push(`\n${w.name}: ${w.requests.length} requests over ${(w.durationMs / 1000).toFixed(0)} s`);
    table(policies);
  }
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(3) : 'n/a');
  const c = (w: WorkloadName, p: PolicyName) => reports[w].policies[p];
  out.push('\ntargets (8 groups, 80% of capacity):');
  out.push(
    `  shared_prefix corral/round_robin p90 TTFT ${ratio(c('shared_prefix', 'corral').p90_ttft_s, c('shared_prefix', 'round_robin').p90_ttft_s)} (<= 0.2), ` +
      `tok/s ${ratio(c('shared_prefix', 'corral').output_tok_s, c('shared_prefix', 'round_robin').output_tok_s)} (>= 1.5)`,
  );
  out.push(
    `  shared_prefix corral/oracle p90 TTFT ${ratio(c('shared_prefix', 'corral').p90_ttft_s, c('shared_prefix', 'oracle').p90_ttft_s)} (<= 1.2), ` +
      `tok/s ${ratio(c('shared_prefix', 'corral').output_tok_s, c('shared_prefix', 'oracle').output_tok_s)} (>= 0.95)`,
  );
  out.push(
    `  no_reuse corral/round_robin tok/s ${ratio(c('no_reuse', 'corral').output_tok_s, c('no_reuse', 'round_robin').output_tok_s)} (>= 0.98), ` +
      `p99 TTFT ${ratio(c('no_reuse', 'corral').p99_ttft_s, c('no_reuse', 'round_robin').p99_ttft_s)} (<= 1.05)`,
  );
  out.push(`  zipf(1.2) corral max/mean load ${c('zipf', 'corral').max_over_mean_load} (<= 1.3)`);
  out.push(
    `\npick() with 1,000 groups: p50 ${pickBench.p50Us} us, p99 ${pickBench.p99Us} us (<= 50); ` +
      `baseline without block hashes p50 ${pickBench.baselineP50Us} us, p99 ${pickBench.baselineP99Us} us ` +
      `(ratio p99 ${ratio(pickBench.p99Us, pickBench.baselineP99Us)}); fastest of 3 timings per request, ` +
      `load average ${pickBench.loadAverage} on ${pickBench.cores} cores (a shared machine)`,
  );
  out.push(
    `simulator: ${json.sim_speed_x_real_time}x real time with 64 groups (>= 100), prompts built ahead on a ` +
      `second thread; ${Math.round(speedRun.simulatedMs / speedRun.cpuMs)}x per CPU second of both threads ` +
      `(median of ${SPEED_RUNS} runs by wall time; the machine is shared)`,
  );
  out.push(
    `plots: ${Object.keys(plots)
      .map((f) => join('bench/out', f))
      .join(', ')}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}
