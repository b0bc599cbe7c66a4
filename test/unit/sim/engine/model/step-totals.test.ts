import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../../../sim/cluster/random.ts';
import {
  type SchedulerRequest,
  StepScheduler,
  type StepSchedulerConfig,
} from '../../../../../sim/engine/model/step-scheduler.ts';

/** Stops where a fixed function of (request, output index) says so: both schedulers sample the same. */
const stopsAt = (id: string, index: number) => (id.length * 7 + index * 13) % 97 === 0;
const tokenAt = (id: string, index: number) => (id.length * 31 + index * 17) % 1000;

/**
 * A request of one of `prefixes` plus a tail of its own (1..tail tokens), asking 1..maxTokens; a priority
 * below `priorities` drawn only when there are any (so a seed's draws depend on the policy, as they did).
 */
function randomRequest(
  random: () => number,
  prefixes: readonly number[][],
  id: string,
  o: { tail: number; maxTokens: number; priorities: number },
): SchedulerRequest {
  const prefix = prefixes[Math.floor(random() * prefixes.length)] as number[];
  const salt = Number(id.slice(1));
  const tail = Array.from({ length: 1 + Math.floor(random() * o.tail) }, (_, i) => 100_000 + salt * 100 + i);
  const maxTokens = 1 + Math.floor(random() * o.maxTokens);
  return {
    id,
    promptIds: [...prefix, ...tail],
    maxTokens,
    priority: o.priorities > 0 ? Math.floor(random() * o.priorities) : 0,
  };
}

/** What planStep reports of the step nextStep planned in full. */
function totalsOf(plan: ReturnType<StepScheduler['nextStep']>) {
  return {
    step: plan.step,
    scheduledSeqs: plan.scheduled.length,
    decodeSeqs: plan.decodeSeqs,
    decodeContextTokens: plan.decodeContextTokens,
    prefillTokens: plan.prefillTokens,
  };
}

/**
 * The same traffic into two schedulers, step by step: one read through nextStep/completeStep (the engine
 * simulator), one through planStep/finishStep (the cluster simulator). Requests share prefixes (prefix hits),
 * a small KV cache forces preemption, some stop early and some are aborted mid-step.
 */
function lockstep(cfg: StepSchedulerConfig, seed: number) {
  const full = new StepScheduler(cfg);
  const lean = new StepScheduler(cfg);
  const random = seededRandom(seed);
  const prefixes = [0, 1, 2].map((p) => Array.from({ length: 48 + 16 * p }, (_, i) => 5000 * p + i));
  let added = 0;
  let steps = 0;
  while (added < 60 || full.hasWork) {
    if (added < 60 && random() < 0.4) {
      const r = randomRequest(random, prefixes, `r${added++}`, { tail: 40, maxTokens: 60, priorities: 3 });
      full.add(r);
      lean.add({ ...r });
    }
    if (!full.hasWork) continue;
    const plan = full.nextStep();
    const totals = lean.planStep();
    expect(totals).toEqual(totalsOf(plan));
    if (plan.scheduled.length === 0) continue;
    // An abort between planning and completing: the request samples nothing in either.
    if (random() < 0.05) {
      const victim = (plan.scheduled[Math.floor(random() * plan.scheduled.length)] as { id: string }).id;
      expect(lean.abort(victim)).toBe(full.abort(victim));
    }
    const { sampled } = full.completeStep(plan, (id, index) => ({
      token: tokenAt(id, index),
      stop: stopsAt(id, index),
    }));
    const delivered = lean.finishStep((req, index) => ({
      token: tokenAt(req.id, index),
      stop: stopsAt(req.id, index),
    }));
    expect(delivered.sampledTokens).toBe(sampled.length);
    expect(delivered.firstTokens.map((r) => r.id)).toEqual(sampled.filter((t) => t.first).map((t) => t.id));
    expect(delivered.finished.map((r) => r.id)).toEqual(
      sampled.filter((t) => t.finish !== null).map((t) => t.id),
    );
    expect(lean.kvUsage).toBe(full.kvUsage);
    steps++;
  }
  expect(lean.totals).toEqual(full.totals);
  return { totals: full.totals, steps };
}

/**
 * Fixed answers: one scheduler samples each answer token through completeStep (the engine simulator's reading,
 * never inside a decode stretch), the other only counts them through planStep/finishStep, where a batch that
 * does not change runs as a decode stretch. Arrivals split stretches, a small KV cache ends them in preemption,
 * requests finish in them, and aborts land between a stretch step's plan and its completion.
 */
function stretchLockstep(cfg: StepSchedulerConfig, seed: number) {
  const answer = (id: string, index: number) => (id.length * 131 + index * 7) % 5000;
  const full = new StepScheduler(cfg);
  const lean = new StepScheduler(cfg, (req, index) => answer(req.id, index));
  const random = seededRandom(seed);
  const prefixes = [0, 1].map((p) => Array.from({ length: 40 + 24 * p }, (_, i) => 7000 * p + i));
  const seen = { stretchSteps: 0, arrivalSplits: 0, finishes: 0, preemptions: 0, aborts: 0 };
  let added = 0;
  let inStretch = false;
  while (added < 80 || full.hasWork) {
    if (added < 80 && random() < 0.12) {
      const priorities = cfg.policy === 'priority' ? 3 : 0;
      const r = randomRequest(random, prefixes, `q${added++}`, { tail: 30, maxTokens: 120, priorities });
      full.add(r);
      lean.add({ ...r });
      if (inStretch) seen.arrivalSplits++;
    }
    if (!full.hasWork) continue;
    const plan = full.nextStep();
    const before = { stretch: lean.stretchSteps, preemptions: lean.totals.preemptions };
    const totals = lean.planStep();
    expect(totals).toEqual(totalsOf(plan));
    const stretched = lean.stretchSteps > before.stretch;
    if (inStretch && lean.totals.preemptions > before.preemptions) seen.preemptions++;
    inStretch = stretched;
    if (stretched) seen.stretchSteps++;
    if (plan.scheduled.length === 0) continue;
    if (random() < 0.03) {
      const victim = (plan.scheduled[Math.floor(random() * plan.scheduled.length)] as { id: string }).id;
      expect(lean.abort(victim)).toBe(full.abort(victim));
      if (stretched) seen.aborts++;
    }
    const { sampled } = full.completeStep(plan, (id, index) => ({ token: answer(id, index), stop: false }));
    const delivered = lean.finishStep();
    expect(delivered.sampledTokens).toBe(sampled.length);
    expect(delivered.firstTokens.map((r) => r.id)).toEqual(sampled.filter((t) => t.first).map((t) => t.id));
    const finished = sampled.filter((t) => t.finish !== null).map((t) => t.id);
    expect(delivered.finished.map((r) => r.id)).toEqual(finished);
    if (stretched && finished.length > 0) seen.finishes++;
    expect(lean.kvUsage).toBe(full.kvUsage);
    expect([lean.numRunning, lean.numWaiting]).toEqual([full.numRunning, full.numWaiting]);
  }
  expect(lean.totals).toEqual(full.totals);
  expect(full.stretchSteps).toBe(0);
  return seen;
}

describe('StepScheduler.planStep/finishStep', () => {
  for (const policy of ['fcfs', 'priority'] as const)
    it(`schedules decode stretches exactly as every step planned in full (${policy}: split by arrivals, ended by a finish, a preemption or an abort)`, () => {
      const seen = stretchLockstep(
        { maxNumSeqs: 8, maxNumBatchedTokens: 96, maxModelLen: 512, policy, numBlocks: 40 },
        policy === 'fcfs' ? 21 : 22,
      );
      expect(seen.stretchSteps).toBeGreaterThan(300);
      expect(seen.arrivalSplits).toBeGreaterThan(0);
      expect(seen.finishes).toBeGreaterThan(0);
      expect(seen.preemptions).toBeGreaterThan(0);
      expect(seen.aborts).toBeGreaterThan(0);
    });

  for (const policy of ['fcfs', 'priority'] as const)
    it(`schedules exactly as nextStep/completeStep (${policy}: prefix hits, preemption, stops, aborts)`, () => {
      const { totals, steps } = lockstep(
        { maxNumSeqs: 6, maxNumBatchedTokens: 96, maxModelLen: 512, policy, numBlocks: 24 },
        policy === 'fcfs' ? 11 : 12,
      );
      expect(steps).toBeGreaterThan(100);
      expect(totals.preemptions).toBeGreaterThan(0);
      expect(totals.prefixHitTokens).toBeGreaterThan(0);
    });

  it('with fixed answers (answerToken) schedules as a sampler giving the same tokens, and hashes the answers it never stored', () => {
    const cfg: StepSchedulerConfig = {
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 512,
      policy: 'fcfs',
      numBlocks: 40,
    };
    const answer = (id: string, index: number) => 500 + id.length * 1000 + index;
    const fixed = new StepScheduler(cfg, (req, index) => answer(req.id, index));
    const sampled = new StepScheduler(cfg);
    const prompt = Array.from({ length: 40 }, (_, i) => i);
    const run = (s: StepScheduler, id: string, promptIds: number[], maxTokens: number) => {
      s.add({ id, promptIds, maxTokens, priority: 0 });
      while (s.hasWork) {
        s.planStep();
        if (s === fixed) s.finishStep();
        else s.finishStep((req, index) => ({ token: answer(req.id, index), stop: false }));
      }
    };
    // The second prompt quotes the first's prompt and its 50-token answer: 90 tokens, 5 full blocks cached.
    const quoted = [...prompt, ...Array.from({ length: 50 }, (_, i) => answer('a', i)), 7];
    for (const s of [fixed, sampled]) {
      run(s, 'a', prompt, 50);
      run(s, 'bb', quoted, 3);
    }
    expect(fixed.totals).toEqual(sampled.totals);
    expect(fixed.totals.prefixHitTokens).toBe(80);
    expect(() => sampled.finishStep()).toThrow(/no step is in flight/);
    fixed.add({ id: 'c', promptIds: [1, 2], maxTokens: 1, priority: 0 });
    const plan = fixed.nextStep();
    expect(() => fixed.completeStep(plan, () => ({ token: 1, stop: false }))).toThrow(/fixed answers/);
    sampled.add({ id: 'c', promptIds: [1, 2], maxTokens: 1, priority: 0 });
    sampled.planStep();
    expect(() => sampled.finishStep()).toThrow(/needs a sampler/);
  });

  it('completes only a planned step', () => {
    const s = new StepScheduler({
      maxNumSeqs: 2,
      maxNumBatchedTokens: 64,
      maxModelLen: 256,
      policy: 'fcfs',
      numBlocks: 8,
    });
    const sample = () => ({ token: 1, stop: false });
    expect(() => s.finishStep(sample)).toThrow(/no step is in flight/);
    s.add({ id: 'a', promptIds: [1, 2, 3], maxTokens: 1, priority: 0 });
    expect(s.planStep().scheduledSeqs).toBe(1);
    expect(() => s.planStep()).toThrow(/step 1 is not completed/);
    expect(s.finishStep(sample).finished.map((r) => r.id)).toEqual(['a']);
    expect(s.hasWork).toBe(false);
  });
});
