/**
 * The routing comparison behind `npm run bench:routing`: the same seeded traffic through every policy, at a
 * load set relative to the cluster's capacity measured in the same run.
 *
 * Capacity of a workload = the highest offered rate the oracle sustains: it completes at least 90% of the
 * offered rate inside the measurement window (finishes lag arrivals behind the ramp) with p90 TTFT <= 5 s (bisection, measured in the same run;
 * nothing routes better, and past that rate queues grow without bound). Offered far beyond it, even the oracle
 * completes less (queued prompts evict cached prefixes), so a saturated run would understate capacity.
 * "80% of capacity" offers 0.8 x that rate. At that load a policy that loses the prefix cache (round robin
 * prefills every 8k-token system prompt again) is overloaded, which is what the shared-prefix target measures.
 *
 * Workloads (405B FP8 TP8 on H100: ~190k KV tokens per group, an 8k-token prefill costs ~1.25 s):
 *   shared_prefix  96 tenants x 8,000-token system prompt (768k tokens: 4 groups' caches, an eighth per group
 *                  under affinity), 8 users each, 200-token questions, 100-300 output tokens, Poisson ramped
 *   zipf           the same with Zipf(1.2) tenant popularity: the hottest tenant alone needs ~2 groups
 *   no_reuse       unique 1,000-3,000-token prompts, 100-300 output tokens
 */
import type { LatencyModel } from '../engine/model/latency-model.ts';
import { type ClusterSimResult, runClusterSim } from './cluster-sim.ts';
import type { EngineGroup, GroupShape } from './engine-group.ts';
import {
  corral,
  leastOutstanding,
  oracle,
  powerOfTwo,
  type Router,
  randomChoice,
  roundRobin,
} from './routers.ts';
import type { PromptSource } from './run-prompts.ts';
import { measuredTtfts, type RunSummary, summarize } from './summary.ts';
import type { Workload } from './workload.ts';
import { documentQa } from './workloads/documents.ts';
import { multiTurn } from './workloads/multi-turn.ts';
import { noReuse } from './workloads/no-reuse.ts';
import { sharedPrefix } from './workloads/shared-prefix.ts';

export const POLICY_NAMES = [
  'round_robin',
  'random',
  'least_outstanding',
  'power_of_two',
  'corral',
  'oracle',
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export function makeRouter(
  name: PolicyName,
  shape: GroupShape,
): (g: ReadonlyMap<string, EngineGroup>) => Router {
  switch (name) {
    case 'round_robin':
      return () => roundRobin();
    case 'random':
      return () => randomChoice();
    case 'least_outstanding':
      return () => leastOutstanding();
    case 'power_of_two':
      return () => powerOfTwo();
    case 'corral':
      return () => corral({ capacityBlocks: shape.numBlocks });
    case 'oracle':
      return (groups) => oracle(groups);
  }
}

export const WORKLOAD_NAMES = ['shared_prefix', 'no_reuse', 'zipf'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export interface SuiteOptions {
  latency: LatencyModel;
  shape: GroupShape;
  groups: number;
  /** Arrival seconds per run (the first fifth is a ramp and not measured). */
  seconds: number;
  seed: number;
  /** Where every run takes its prompts from (cluster-sim.ts ClusterSimOptions.prompts; the same results). */
  prompts?: PromptSource;
  onProgress?: (line: string) => void;
}

/** A workload scaled to the cluster: tenants and rates grow with the number of groups (8 is the reference). */
export function buildWorkload(
  name: WorkloadName,
  ratePerS: number,
  o: Pick<SuiteOptions, 'groups' | 'seconds' | 'seed'>,
): Workload {
  const arrivals = { ratePerS, durationS: o.seconds, rampS: o.seconds / 6 };
  const scale = o.groups / 8;
  if (name === 'no_reuse')
    return noReuse({
      promptTokens: { min: 1000, max: 3000 },
      outputTokens: { min: 100, max: 300 },
      arrivals,
      tenants: 16,
      seed: o.seed,
    });
  return sharedPrefix({
    tenants: Math.round(96 * scale),
    prefixTokens: 8000,
    usersPerTenant: 8,
    questionTokens: 200,
    outputTokens: { min: 100, max: 300 },
    arrivals,
    ...(name === 'zipf' ? { zipf: 1.2 } : {}),
    seed: o.seed,
  });
}

/** Upper end of the capacity search, per group (no policy sustains it on these workloads). */
const MAX_RATE_PER_GROUP: Record<WorkloadName, number> = { shared_prefix: 3, zipf: 4, no_reuse: 3 };

export function run(name: PolicyName, w: Workload, o: SuiteOptions): ClusterSimResult {
  return runClusterSim({
    groups: o.groups,
    shape: o.shape,
    latency: o.latency,
    router: makeRouter(name, o.shape),
    workload: w,
    seed: o.seed + 1,
    drainMs: 60_000,
    prompts: o.prompts,
  });
}

/** Requests per second completed inside the measurement window. */
export function completedRate(r: ClusterSimResult, w: Workload): number {
  let n = 0;
  for (let i = 0; i < r.finishMs.length; i++) {
    const t = r.finishMs[i] as number;
    if (t > w.warmupMs && t <= w.durationMs) n++;
  }
  return r.windowMs > 0 ? n / (r.windowMs / 1000) : 0;
}

export function sustains(name: WorkloadName, ratePerS: number, o: SuiteOptions): boolean {
  const w = buildWorkload(name, ratePerS, o);
  const r = run('oracle', w, o);
  const done = completedRate(r, w);
  const p90 = summarize(r, w).p90_ttft_s;
  const ok = done >= 0.9 * ratePerS && p90 <= 5;
  o.onProgress?.(
    `capacity ${name}: oracle at ${ratePerS.toFixed(2)} req/s completes ${done.toFixed(2)}, p90 ${p90} s: ${ok ? 'sustained' : 'not sustained'}`,
  );
  return ok;
}

/** Bisection for the highest rate the oracle sustains, to 1/64 of the search range. */
export function capacityRate(name: WorkloadName, o: SuiteOptions, steps = 6): number {
  let lo = 0;
  let hi = MAX_RATE_PER_GROUP[name] * o.groups;
  for (let i = 0; i < steps; i++) {
    const mid = (lo + hi) / 2;
    if (sustains(name, mid, o)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface WorkloadReport {
  capacityReqPerS: number;
  offeredReqPerS: number;
  policies: Record<PolicyName, RunSummary>;
  /** Ascending TTFTs (s) per policy, for the CDF plot. */
  ttfts: Record<PolicyName, Float64Array>;
}

/** Every policy on one workload: summaries and the TTFTs behind them. */
function runAll(w: Workload, o: SuiteOptions, label: string) {
  const policies = {} as Record<PolicyName, RunSummary>;
  const ttfts = {} as Record<PolicyName, Float64Array>;
  for (const p of POLICY_NAMES) {
    const r = run(p, w, o);
    policies[p] = summarize(r, w);
    ttfts[p] = measuredTtfts(r, w);
    o.onProgress?.(`${label} ${p}: p90 TTFT ${policies[p].p90_ttft_s} s, ${policies[p].output_tok_s} tok/s`);
  }
  return { policies, ttfts };
}

export function compare(
  name: WorkloadName,
  loadFraction: number,
  o: SuiteOptions,
  capacity?: number,
): WorkloadReport {
  const cap = capacity ?? capacityRate(name, o);
  const offered = loadFraction * cap;
  const w = buildWorkload(name, offered, o);
  return {
    capacityReqPerS: cap,
    offeredReqPerS: offered,
    ...runAll(w, o, `${name} @${Math.round(loadFraction * 100)}%`),
  };
}

export interface SweepPoint {
  loadFraction: number;
  policy: PolicyName;
  outputTokS: number;
  p90TtftS: number;
}

/** Throughput and p90 TTFT against offered load, for the plots. */
export function sweep(
  name: WorkloadName,
  fractions: readonly number[],
  policies: readonly PolicyName[],
  capacity: number,
  o: SuiteOptions,
): SweepPoint[] {
  const out: SweepPoint[] = [];
  for (const f of fractions) {
    const w = buildWorkload(name, f * capacity, o);
    for (const p of policies) {
      const s = summarize(run(p, w, o), w);
      out.push({ loadFraction: f, policy: p, outputTokS: s.output_tok_s, p90TtftS: s.p90_ttft_s });
      o.onProgress?.(
        `sweep ${name} @${Math.round(f * 100)}% ${p}: ${s.output_tok_s} tok/s, p90 ${s.p90_ttft_s} s`,
      );
    }
  }
  return out;
}

/**
 * The other workload shapes at fixed offered rates on 8 groups (not capacity-relative: a report of how the
 * policies compare, with no target): multi-turn chat, long-document QA (24 documents of 32k tokens), and the
 * shared-prefix tenants with bursty gamma arrivals (cv 3).
 */
export function extraWorkloads(o: Pick<SuiteOptions, 'seconds' | 'seed'>): Workload[] {
  const ramp = o.seconds / 6;
  return [
    multiTurn({
      conversations: { ratePerS: 1.5, durationS: o.seconds, rampS: ramp },
      systemTokens: 2000,
      turns: { min: 3, max: 8 },
      userTokens: { min: 50, max: 400 },
      outputTokens: { min: 100, max: 300 },
      thinkS: 10,
      seed: o.seed,
    }),
    documentQa({
      documents: 24,
      documentTokens: 32_000,
      questionTokens: 100,
      outputTokens: { min: 50, max: 200 },
      arrivals: { ratePerS: 4, durationS: o.seconds, rampS: ramp },
      seed: o.seed,
    }),
    {
      ...sharedPrefix({
        tenants: 96,
        prefixTokens: 8000,
        usersPerTenant: 8,
        questionTokens: 200,
        outputTokens: { min: 100, max: 300 },
        arrivals: { ratePerS: 12, durationS: o.seconds, rampS: ramp, burstCv: 3 },
        seed: o.seed,
      }),
      name: 'bursty_shared_prefix',
    },
  ];
}

/** Every policy on one workload (extra workloads, or a replayed trace). */
export function compareOn(w: Workload, o: SuiteOptions): Record<PolicyName, RunSummary> {
  return runAll(w, o, w.name).policies;
}
