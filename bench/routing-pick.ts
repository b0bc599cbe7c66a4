/**
 * The production scheduler.pick timed per call with 1,000 ready groups and a populated prefix index (500
 * prefixes of 4,096 tokens, each believed held by 1-3 groups); every request carries 272 block hashes (a known
 * prefix and a fresh question). Baseline in the same run: the same pick without block hashes (least outstanding,
 * what the gateway does today), so the ratio says what prefix awareness costs.
 * Five rounds of each, interleaved; each figure is the best round's, because on a shared two-core machine a
 * round's p99 is mostly other processes preempting this one, not pick().
 */
import { performance } from 'node:perf_hooks';
import { chainBlockHash, ROOT_BLOCK_HASH } from '../controller/scheduler/block-hashes.ts';
import { type GroupView, pick, type RouteRequest } from '../controller/scheduler/pick.ts';
import { PrefixIndex } from '../controller/scheduler/prefix-index.ts';
import { seededRandom } from '../sim/cluster/random.ts';
import { quantile } from '../sim/cluster/summary.ts';

export interface PickBench {
  p50Us: number;
  p99Us: number;
  baselineP50Us: number;
  baselineP99Us: number;
  calls: number;
}

function chain(parent: number, seed: number, count: number): number[] {
  const out: number[] = [];
  let h = parent;
  for (let i = 0; i < count; i++) {
    h = chainBlockHash(h, [seed, i]);
    out.push(h);
  }
  return out;
}

export function benchPick(groups = 1000, calls = 10_000): PickBench {
  const random = seededRandom(42);
  const views: GroupView[] = Array.from({ length: groups }, (_, i) => ({
    id: `g${i}`,
    deployment: 'm',
    state: 'ready',
    outstanding: Math.floor(random() * 40),
    kvUsage: random(),
    pendingPrefillTokens: Math.floor(random() * 8000),
  }));
  const index = new PrefixIndex({ defaultCapacityBlocks: 11_841 });
  const prefixes = Array.from({ length: 500 }, (_, p) => chain(ROOT_BLOCK_HASH, p, 256));
  prefixes.forEach((blocks, p) => {
    const holders = 1 + Math.floor(random() * 3);
    for (let k = 0; k < holders; k++) index.record(`g${(p * 7 + k * 331) % groups}`, blocks, 0);
  });
  const requests: RouteRequest[] = Array.from({ length: calls }, (_, i) => {
    const prefix = prefixes[Math.floor(random() * prefixes.length)] as number[];
    return {
      deployment: 'm',
      promptBlocks: prefix.concat(chain(prefix[prefix.length - 1] as number, 1_000_000 + i, 16)),
    };
  });
  const time = (withBlocks: boolean): Float64Array => {
    const out = new Float64Array(calls);
    for (let i = 0; i < calls; i++) {
      const req = requests[i] as RouteRequest;
      const r = withBlocks ? req : { deployment: req.deployment };
      const t0 = performance.now();
      pick({ groups: views, prefixIndex: index }, r, random);
      out[i] = (performance.now() - t0) * 1000;
    }
    return out.sort();
  };
  time(true); // warm-up: JIT and caches
  time(false);
  const best = { p50: Infinity, p99: Infinity, baseP50: Infinity, baseP99: Infinity };
  for (let round = 0; round < 5; round++) {
    const measured = time(true);
    const baseline = time(false);
    best.p50 = Math.min(best.p50, quantile(measured, 0.5));
    best.p99 = Math.min(best.p99, quantile(measured, 0.99));
    best.baseP50 = Math.min(best.baseP50, quantile(baseline, 0.5));
    best.baseP99 = Math.min(best.baseP99, quantile(baseline, 0.99));
  }
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    p50Us: r(best.p50),
    p99Us: r(best.p99),
    baselineP50Us: r(best.baseP50),
    baselineP99Us: r(best.baseP99),
    calls,
  };
}
