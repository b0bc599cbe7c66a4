import { describe, expect, it } from 'vitest';
import { runClusterSim } from '../../../../sim/cluster/cluster-sim.ts';
import { corral, leastOutstanding, oracle, roundRobin } from '../../../../sim/cluster/routers.ts';
import { summarize } from '../../../../sim/cluster/summary.ts';
import type { Workload } from '../../../../sim/cluster/workload.ts';
import { contentKey } from '../../../../sim/cluster/workloads/prompt-segments.ts';
import { sharedPrefix } from '../../../../sim/cluster/workloads/shared-prefix.ts';
import { chatWorkload, crowdedWorkload, latency, SMALL } from './fixtures.ts';

// 8 tenants x 1,600-token prompts = 800 blocks: all of them fit no group's 400, an eighth of them fits any.
const workload = sharedPrefix({
  tenants: 8,
  prefixTokens: 1600,
  usersPerTenant: 2,
  questionTokens: 48,
  outputTokens: { min: 8, max: 16 },
  arrivals: { ratePerS: 8, durationS: 30, rampS: 5 },
  seed: 3,
});
const base = { groups: 4, shape: SMALL, latency, workload, seed: 1 };

describe('cluster simulator', () => {
  it('is a deterministic function of its inputs', () => {
    const a = runClusterSim({ ...base, router: () => corral({ capacityBlocks: SMALL.numBlocks }) });
    const b = runClusterSim({ ...base, router: () => corral({ capacityBlocks: SMALL.numBlocks }) });
    expect(Array.from(a.firstTokenMs)).toEqual(Array.from(b.firstTokenMs));
    expect(a.steps).toBe(b.steps);
  });

  it('gives the same schedule whether engines take the router block hashes or hash each prompt themselves', () => {
    for (const router of [() => corral({ capacityBlocks: SMALL.numBlocks }), oracle]) {
      const shared = runClusterSim({ ...base, router });
      const own = runClusterSim({ ...base, router, sharedBlockHashes: false });
      expect(Array.from(shared.firstTokenMs)).toEqual(Array.from(own.firstTokenMs));
      expect(Array.from(shared.finishMs)).toEqual(Array.from(own.finishMs));
      expect([shared.steps, shared.prefixHitTokens, shared.prefixQueryTokens]).toEqual([
        own.steps,
        own.prefixHitTokens,
        own.prefixQueryTokens,
      ]);
      expect(shared.prefixHitTokens).toBeGreaterThan(0);
    }
  });

  it('gives the same schedule whether engines read each step whole (as the engine simulator does) or only its totals', () => {
    const crowded = crowdedWorkload(30, 48);
    const chat = chatWorkload(30);
    for (const [workload, router] of [
      [crowded, () => corral({ capacityBlocks: SMALL.numBlocks })],
      [crowded, oracle],
      [chat, () => corral({ capacityBlocks: SMALL.numBlocks })],
    ] as const) {
      const options = { ...base, workload, router, drainMs: 600_000 };
      const totals = runClusterSim(options);
      const whole = runClusterSim({ ...options, fullStepPlans: true });
      expect(Array.from(totals.dispatchMs)).toEqual(Array.from(whole.dispatchMs));
      expect(Array.from(totals.firstTokenMs)).toEqual(Array.from(whole.firstTokenMs));
      expect(Array.from(totals.finishMs)).toEqual(Array.from(whole.finishMs));
      expect([totals.steps, totals.preemptions, totals.prefixHitTokens, totals.windowOutputTokens]).toEqual([
        whole.steps,
        whole.preemptions,
        whole.prefixHitTokens,
        whole.windowOutputTokens,
      ]);
      expect(totals.prefixHitTokens).toBeGreaterThan(0);
      expect(summarize(totals, workload).unfinished).toBe(0);
      if (workload === crowded) expect(totals.preemptions).toBeGreaterThan(0);
      // Many steps of the totals' reading run inside decode stretches; the engine simulator's reading has none.
      expect(totals.stretchSteps).toBeGreaterThan(totals.steps / 4);
      expect(whole.stretchSteps).toBe(0);
    }
  });

  it('serves every request: dispatch at arrival, first token after at least one step, finish after that', () => {
    const r = runClusterSim({ ...base, router: () => leastOutstanding() });
    for (const req of workload.requests) {
      const d = r.dispatchMs[req.id] as number;
      const f = r.firstTokenMs[req.id] as number;
      expect(d).toBe(req.arrivalMs);
      expect(f).toBeGreaterThan(d);
      expect(r.finishMs[req.id] as number).toBeGreaterThanOrEqual(f);
    }
    expect(r.reasons.get('least outstanding')).toBe(workload.requests.length);
    expect(r.windowOutputTokens).toBeGreaterThan(0);
    // A request's TTFT includes at least one step of the calibrated model (>= the per-step CPU overhead).
    const s = summarize(r, workload);
    expect(s.p50_ttft_s).toBeGreaterThan(0.002);
    expect(s.unfinished).toBe(0);
  });

  it('prefix-aware routing keeps each tenant on few groups: more cache hits than round robin', () => {
    const rr = summarize(runClusterSim({ ...base, router: () => roundRobin() }), workload);
    const c = summarize(
      runClusterSim({ ...base, router: () => corral({ capacityBlocks: SMALL.numBlocks }) }),
      workload,
    );
    expect(c.prefix_hit_rate).toBeGreaterThan(rr.prefix_hit_rate + 0.2);
    expect(Object.keys(c.reasons)).toContain('prefix hit');
  });

  it('with a per-group bound, requests wait in the fair queue and are dispatched when a group frees', () => {
    const r = runClusterSim({ ...base, router: () => roundRobin(), maxOutstandingPerGroup: 1 });
    let delayed = 0;
    for (const req of workload.requests) {
      expect(r.finishMs[req.id]).not.toBeNaN();
      if ((r.dispatchMs[req.id] as number) > req.arrivalMs) delayed++;
    }
    expect(delayed).toBeGreaterThan(0);
    expect(Math.max(...r.meanOutstanding)).toBeLessThanOrEqual(1);
  });

  it('refuses a request no group can ever hold and serves the rest', () => {
    // One inside the measurement window, so the summary counts it too.
    const k = workload.requests.findIndex((r) => r.arrivalMs > workload.warmupMs);
    const big: Workload = {
      ...workload,
      requests: workload.requests.map((r, i) =>
        i === k ? { ...r, segments: [{ key: contentKey(99), tokens: 7000 }], promptTokens: 7000 } : r,
      ),
    };
    const r = runClusterSim({ ...base, workload: big, router: () => leastOutstanding() });
    expect(r.refused[k]).toBe(1);
    expect(r.firstTokenMs[k]).toBeNaN();
    expect(r.firstTokenMs[k + 1]).not.toBeNaN();
    expect(summarize(r, big).refused).toBe(1);
  });
});
