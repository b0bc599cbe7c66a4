/**
 * bench:routing-agreement — do the cluster simulator and the real processes agree? One small shared-prefix
 * scenario (bench/agreement/scenario.ts: 2 groups of 405B FP8 TP8 on simulated H100s, calibrated latency model)
 * runs twice with the same workload, seed and engine settings:
 *   sim    sim/cluster in virtual time, corral's router (PrefixRouter, as the dispatcher drives it)
 *   live   a LocalCluster (Redis, controller, workers, engine simulators at --sim-time-scale F), driven
 *          open-loop over gRPC (bench/agreement/live-run.ts); times converted to simulated seconds (wall x F)
 * and prints p50 and p90 TTFT of both and live/sim (target: within 15%), with what explains a gap: the
 * controller's share of the live TTFT (accepted -> dispatched, and -> first token at the dispatcher), the
 * engines' own mean TTFT beside the simulator's (every request, arrival at the engine -> first token), prefix
 * hit rates and pick reasons of both.
 *
 * What the simulator does not model is the processes' own latency: the gRPC, Redis and HTTP hops between
 * client, gateway, dispatcher, worker and engine. Measured per request on this shared 2-core machine (the
 * engines' arrival and first write timed beside the client's send and first delta), they cost 50-65 ms of wall
 * time at p50 and 110-140 ms at p90 under a load average of 5-11 (other engineers' work plus 3 busy loops).
 * Time-scale multiplies that wall time into simulated time, and a request delayed past an engine step's start
 * waits a whole step (~50 ms), so a few ms of simulated delay move p90. The default F = 0.1 (simulated time at a
 * tenth of real speed: 40 simulated seconds take 400 s) keeps the hops small against the GPU's time even on a
 * loaded machine, as on real hardware, where the same hops cost real milliseconds against real step times.
 *
 * Usage: npm run bench:routing-agreement [-- --json] [-- --rate 4 --seconds 40 --time-scale 0.1 --seed 1]
 * With --json the last line of stdout is one object {scenario, sim, live, ratio, within_15pct}.
 */
import { parseArgs } from 'node:util';
import { runClusterSim } from '../sim/cluster/cluster-sim.ts';
import { corral } from '../sim/cluster/routers.ts';
import { quantile, summarize } from '../sim/cluster/summary.ts';
import { CALIBRATION_DIR, loadCalibration } from '../sim/engine/calibration.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from '../sim/engine/model/latency-model.ts';
import { type LiveRequest, runLive } from './agreement/live-run.ts';
import { agreementShape, agreementWorkload, GROUPS } from './agreement/scenario.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    rate: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '40' },
    'time-scale': { type: 'string', default: '0.1' },
    seed: { type: 'string', default: '1' },
  },
});

function positive(name: string, raw: string | undefined, integer = false): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    process.stderr.write(
      `bench:routing-agreement: --${name} must be a positive ${integer ? 'integer' : 'number'}, got ${raw}\n`,
    );
    process.exit(2);
  }
  return n;
}
const rate = positive('rate', args.rate);
const seconds = positive('seconds', args.seconds);
const timeScale = positive('time-scale', args['time-scale']);
const seed = positive('seed', args.seed, true);
const progress = (line: string) => process.stderr.write(`  ${line}\n`);

const workload = agreementWorkload({ ratePerS: rate, seconds, seed });
const shape = agreementShape();
const cal = loadCalibration(CALIBRATION_DIR, 'llama-3.1-405b', 8, 'h100-80g');
const latency = new LatencyModel(cal.data, { tp: 8, pp: 1, fp8: true, ...DEFAULT_LATENCY_PARAMS });

progress(`sim: ${workload.requests.length} requests, ${GROUPS} groups of ${shape.numBlocks} KV blocks`);
const simResult = runClusterSim({
  groups: GROUPS,
  shape,
  latency,
  router: () => corral({ capacityBlocks: shape.numBlocks }),
  workload,
  seed,
  // The workers heartbeat every wall second: F simulated seconds.
  reportIntervalMs: 1000 * timeScale,
});
const sim = summarize(simResult, workload);
/** Every request's TTFT in the simulator, as the engines' own histogram counts theirs (no warm-up cut). */
const simTtftsAll = workload.requests
  .map((r) => ((simResult.firstTokenMs[r.id] as number) - r.arrivalMs) / 1000)
  .filter((x) => !Number.isNaN(x));
const simMeanTtftAll = simTtftsAll.reduce((a, b) => a + b, 0) / simTtftsAll.length;

const live = await runLive(workload, { timeScale, onProgress: progress });
const measured = workload.requests.filter(
  (r) => r.arrivalMs >= workload.warmupMs && r.arrivalMs <= workload.durationMs,
);
const liveOf = (pick: (r: LiveRequest) => number) =>
  Float64Array.from(
    measured.map((r) => pick(live.requests[r.id] as LiveRequest)).filter((x) => !Number.isNaN(x)),
  ).sort();
const ttfts = liveOf((r) => r.ttftS);
const queue = liveOf((r) => r.queueS);
const dispatcherTtft = liveOf((r) => r.controllerTtftS);
const failed = measured.filter((r) => live.requests[r.id]?.error !== undefined).length;
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const liveSummary = {
  p50_ttft_s: round(quantile(ttfts, 0.5)),
  p90_ttft_s: round(quantile(ttfts, 0.9)),
  p50_queue_s: round(quantile(queue, 0.5)),
  p90_queue_s: round(quantile(queue, 0.9)),
  p50_dispatcher_ttft_s: round(quantile(dispatcherTtft, 0.5)),
  p90_dispatcher_ttft_s: round(quantile(dispatcherTtft, 0.9)),
  measured_requests: ttfts.length,
  failed,
  prefix_hit_rate: round(live.prefixHitRate),
  reasons: live.pickReasons,
  engine_mean_ttft_s_all: round(live.engineTtft.meanS),
  engine_first_tokens: live.engineTtft.count,
};
const ratio = {
  p50: round(liveSummary.p50_ttft_s / sim.p50_ttft_s),
  p90: round(liveSummary.p90_ttft_s / sim.p90_ttft_s),
};
const within = Math.abs(ratio.p50 - 1) <= 0.15 && Math.abs(ratio.p90 - 1) <= 0.15;

const out = {
  scenario: {
    groups: GROUPS,
    rate_per_s: rate,
    seconds,
    time_scale: timeScale,
    seed,
    requests: workload.requests.length,
  },
  sim: {
    p50_ttft_s: sim.p50_ttft_s,
    p90_ttft_s: sim.p90_ttft_s,
    measured_requests: sim.measured_requests,
    mean_ttft_s_all: round(simMeanTtftAll),
    first_tokens: simTtftsAll.length,
    prefix_hit_rate: sim.prefix_hit_rate,
    reasons: sim.reasons,
  },
  live: liveSummary,
  ratio,
  within_15pct: within,
};

if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
else {
  const row = (name: string, p50: number, p90: number, extra: string) =>
    `${name.padEnd(28)}${p50.toFixed(3).padStart(10)}${p90.toFixed(3).padStart(10)}  ${extra}`;
  process.stdout.write(
    [
      `shared prefix, ${GROUPS} groups 405B FP8 TP8 H100, ${rate} req/s for ${seconds} s, time-scale ${timeScale}, seed ${seed}`,
      `${''.padEnd(28)}${'p50 TTFT'.padStart(10)}${'p90 TTFT'.padStart(10)}  (simulated seconds)`,
      row(
        'cluster simulator',
        sim.p50_ttft_s,
        sim.p90_ttft_s,
        `hit rate ${sim.prefix_hit_rate}, ${sim.measured_requests} measured`,
      ),
      row(
        'local cluster (client)',
        liveSummary.p50_ttft_s,
        liveSummary.p90_ttft_s,
        `hit rate ${liveSummary.prefix_hit_rate}, ${ttfts.length} measured, ${failed} failed`,
      ),
      row(
        '  accepted -> dispatched',
        liveSummary.p50_queue_s,
        liveSummary.p90_queue_s,
        'controller queue + dispatch',
      ),
      row(
        '  accepted -> first token',
        liveSummary.p50_dispatcher_ttft_s,
        liveSummary.p90_dispatcher_ttft_s,
        'at the dispatcher',
      ),
      row('live / sim', ratio.p50, ratio.p90, within ? 'within 15%' : 'NOT within 15%'),
      `engines' own TTFT (arrival at the engine -> first token), mean of every request: ${liveSummary.engine_mean_ttft_s_all.toFixed(3)} s over ${live.engineTtft.count} (simulator ${out.sim.mean_ttft_s_all.toFixed(3)} s over ${simTtftsAll.length})`,
      `pick reasons: sim ${JSON.stringify(sim.reasons)}; live ${JSON.stringify(live.pickReasons)}`,
      '',
    ].join('\n'),
  );
}
