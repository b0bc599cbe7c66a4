import { describe, expect, it } from 'vitest';
import { CALIBRATION_DIR, loadCalibration } from '../../../../../sim/engine/calibration.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from '../../../../../sim/engine/model/latency-model.ts';
import {
  meanDecodeContext,
  type SchedulerRequest,
  type StepPlan,
  StepScheduler,
  type StepSchedulerConfig,
} from '../../../../../sim/engine/model/step-scheduler.ts';

const CFG: StepSchedulerConfig = {
  maxNumSeqs: 8,
  maxNumBatchedTokens: 256,
  maxModelLen: 4096,
  policy: 'fcfs',
  numBlocks: 1000,
};

/** Distinct token ids per prompt, so no two prompts share a block unless the test says so. */
function prompt(len: number, salt: number): number[] {
  return Array.from({ length: len }, (_, i) => 1000 + salt * 10_000 + i);
}

function req(id: string, promptLen: number, maxTokens: number, over: Partial<SchedulerRequest> = {}) {
  return {
    id,
    promptIds: prompt(promptLen, Number(id.replace(/\D/g, '') || 0)),
    maxTokens,
    priority: 0,
    ...over,
  };
}

const neverStops = () => ({ token: 7, stop: false });

/** Runs steps until nothing is left; returns every plan and the order in which requests finished. */
function drain(s: StepScheduler, maxSteps = 10_000) {
  const plans: StepPlan[] = [];
  const finished: string[] = [];
  const firsts: string[] = [];
  while (s.hasWork) {
    if (plans.length >= maxSteps) throw new Error('the scheduler did not drain');
    const plan = s.nextStep();
    plans.push(plan);
    for (const t of s.completeStep(plan, neverStops).sampled) {
      if (t.first) firsts.push(t.id);
      if (t.finish) finished.push(t.id);
    }
  }
  return { plans, finished, firsts };
}

describe('StepScheduler', () => {
  it('respects the token budget every step: decodes first, then prefill chunks of what is left', () => {
    const s = new StepScheduler(CFG);
    s.add(req('r1', 100, 20));
    s.add(req('r2', 700, 5));
    s.add(req('r3', 300, 5));
    const { plans, finished } = drain(s);
    for (const p of plans) {
      expect(p.scheduled.reduce((a, c) => a + c.tokens, 0)).toBeLessThanOrEqual(CFG.maxNumBatchedTokens);
      // Requests already running (decodes and partial prefills) are planned before newly admitted ones.
      const firstPrefill = p.scheduled.findIndex((c) => !c.decode);
      if (firstPrefill >= 0) expect(p.scheduled.slice(firstPrefill).some((c) => c.decode)).toBe(false);
    }
    // Step 1: r1's whole prompt and the first 156 tokens of r2 (chunked); r3 waits for budget.
    expect(plans[0]?.scheduled).toEqual([
      { id: 'r1', tokens: 100, context: 100, decode: false },
      { id: 'r2', tokens: 156, context: 156, decode: false },
    ]);
    // Step 2: r1 decodes (1 token), r2 continues with 255 tokens.
    expect(plans[1]?.scheduled.slice(0, 2)).toEqual([
      { id: 'r1', tokens: 1, context: 101, decode: true },
      { id: 'r2', tokens: 255, context: 411, decode: false },
    ]);
    expect(plans[1]?.decodeSeqs).toBe(1);
    expect(plans[1]?.prefillTokens).toBe(255);
    expect(finished.sort()).toEqual(['r1', 'r2', 'r3']);
  });

  it('runs at most max-num-seqs requests at once', () => {
    const s = new StepScheduler({ ...CFG, maxNumSeqs: 2 });
    for (let i = 0; i < 5; i++) s.add(req(`r${i}`, 16, 3));
    const first = s.nextStep();
    expect(first.scheduled.map((c) => c.id)).toEqual(['r0', 'r1']);
    expect(s.numRunning).toBe(2);
    expect(s.numWaiting).toBe(3);
    s.completeStep(first, neverStops);
    expect(drain(s).finished).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('preempts the newest running request by recompute when KV blocks run out, and finishes everything', () => {
    // 10 blocks of 16 tokens; three requests of 40 prompt tokens (3 blocks each) grow past 4 blocks each.
    const s = new StepScheduler({ ...CFG, numBlocks: 10 });
    for (let i = 0; i < 3; i++) s.add(req(`r${i}`, 40, 60));
    const { plans, finished } = drain(s);
    const preempting = plans.filter((p) => p.preempted.length > 0);
    expect(preempting.length).toBeGreaterThan(0);
    // FCFS preempts from the back of the running list: the newest request goes first.
    expect(preempting[0]?.preempted).toEqual(['r2']);
    expect(s.totals.preemptions).toBe(preempting.reduce((a, p) => a + p.preempted.length, 0));
    // A preempted request is recomputed: a prefill of its prompt plus the tokens it had generated.
    const resumed = plans.findIndex(
      (p, i) => i > plans.indexOf(preempting[0] as StepPlan) && p.scheduled.some((c) => c.id === 'r2'),
    );
    const chunk = plans[resumed]?.scheduled.find((c) => c.id === 'r2');
    expect(chunk?.decode).toBe(false);
    expect(chunk?.tokens).toBeGreaterThan(40);
    expect(finished.sort()).toEqual(['r0', 'r1', 'r2']);
    expect(s.kvUsage).toBe(0);
  });

  it('admits no waiting request in a step that preempted', () => {
    const s = new StepScheduler({ ...CFG, numBlocks: 10 });
    for (let i = 0; i < 3; i++) s.add(req(`r${i}`, 40, 60));
    s.add(req('r9', 16, 2));
    const { plans } = drain(s);
    for (const p of plans.filter((x) => x.preempted.length > 0)) expect(p.started).not.toContain('r9');
  });

  it('counts prefix-cache queries and hits in tokens, and a hit shortens the prefill', () => {
    const s = new StepScheduler(CFG);
    const shared = prompt(100, 1);
    s.add({ id: 'a', promptIds: shared, maxTokens: 1, priority: 0 });
    const a = s.nextStep();
    s.completeStep(a, neverStops);
    expect(a.prefixQueryTokens).toBe(100);
    expect(a.prefixHitTokens).toBe(0);
    // Same first 96 tokens (6 full blocks), different tail.
    s.add({ id: 'b', promptIds: [...shared.slice(0, 96), 5, 6, 7, 8, 9], maxTokens: 1, priority: 0 });
    const b = s.nextStep();
    expect(b.prefixQueryTokens).toBe(101);
    expect(b.prefixHitTokens).toBe(96);
    expect(b.prefillTokens).toBe(101 - 96);
    expect(s.totals).toMatchObject({ prefixQueryTokens: 201, prefixHitTokens: 96 });
    // A full hit still computes the last token (V1 never hits a whole prompt).
    s.completeStep(b, neverStops);
    s.add({ id: 'c', promptIds: shared.slice(0, 96), maxTokens: 1, priority: 0 });
    expect(s.nextStep().prefixHitTokens).toBe(80);

    const { data: cal } = loadCalibration(CALIBRATION_DIR, 'llama-3.1-405b', 8, 'h100-80g');
    const latency = new LatencyModel(cal, { ...DEFAULT_LATENCY_PARAMS, tp: 8, pp: 1, fp8: true });
    const ms = (p: StepPlan) => latency.stepMs(p.decodeSeqs, meanDecodeContext(p), p.prefillTokens);
    expect(ms(b)).toBeLessThan(ms(a));
  });

  it("evicts the least recently freed cached blocks first, a prompt's tail before its head", () => {
    // 8 blocks. a, then b (32 tokens + 1 each: 2 cached full blocks and 1 partial) run and free their blocks;
    // then c (48 + 1 tokens) needs 4 fresh blocks: the 2 never used, a's partial block, then a's second block (a was freed
    // first, last block first). b's blocks and a's first block stay cached.
    const pa = prompt(32, 1);
    const pb = prompt(32, 2);
    const afterEviction = () => {
      const s = new StepScheduler({ ...CFG, numBlocks: 8 });
      for (const [id, p] of [
        ['a', pa],
        ['b', pb],
        ['c', prompt(48, 3)],
      ] as const) {
        s.add({ id, promptIds: [...p, 1], maxTokens: 1, priority: 0 });
        drain(s);
      }
      return s;
    };
    const hit = (s: StepScheduler, p: number[]) => {
      s.add({ id: 'again', promptIds: [...p, 2], maxTokens: 1, priority: 0 });
      return s.nextStep().prefixHitTokens;
    };
    expect(hit(afterEviction(), pa)).toBe(16);
    expect(hit(afterEviction(), pb)).toBe(32);
  });

  it('under the priority policy admits the lowest priority value first, arrival order among equals', () => {
    const s = new StepScheduler({ ...CFG, policy: 'priority', maxNumSeqs: 1 });
    s.add(req('r1', 16, 1, { priority: 5 }));
    s.add(req('r2', 16, 1, { priority: -1 }));
    s.add(req('r3', 16, 1, { priority: 5 }));
    s.add(req('r4', 16, 1, { priority: 0 }));
    expect(drain(s).finished).toEqual(['r2', 'r4', 'r1', 'r3']);
  });

  it('under the priority policy preempts the lowest-priority running request', () => {
    const s = new StepScheduler({ ...CFG, policy: 'priority', numBlocks: 10 });
    s.add(req('r0', 40, 60, { priority: 1 }));
    s.add(req('r1', 40, 60, { priority: 9 }));
    s.add(req('r2', 40, 60, { priority: 0 }));
    const { plans } = drain(s);
    expect(plans.find((p) => p.preempted.length > 0)?.preempted[0]).toBe('r1');
  });

  describe('priority preemption (V1: a running request that gets no KV block preempts max(running, key=(priority, arrival)))', () => {
    const ids = (p: StepPlan) => p.scheduled.map((c) => c.id);
    /** lo1 (priority 9) then hi2 (priority 0) decoding on 4 blocks; at the third step hi2 needs a block and none is free. */
    function crowded(policy: 'fcfs' | 'priority') {
      const s = new StepScheduler({ ...CFG, policy, numBlocks: 4 });
      s.add(req('lo1', 32, 20, { priority: 9 }));
      s.completeStep(s.nextStep(), neverStops);
      s.add(req('hi2', 16, 20, { priority: 0 }));
      s.completeStep(s.nextStep(), neverStops);
      return { s, plan: s.nextStep() };
    }

    it('preempts the lower-priority request, even one already scheduled this step, and gives its tokens back', () => {
      const { plan } = crowded('priority');
      expect(plan.preempted).toEqual(['lo1']);
      expect(ids(plan)).toEqual(['hi2']);
      expect(plan.decodeSeqs).toBe(1);
      // FCFS preempts the newest instead: hi2 gives way to lo1.
      const fcfs = crowded('fcfs').plan;
      expect([fcfs.preempted, ids(fcfs)]).toEqual([['hi2'], ['lo1']]);
    });

    it('a request that is itself the lowest priority preempts itself, which ends the running pass of the step', () => {
      // Running in order a1, b2, c3 on 4 blocks, all full: at the third step b2 (the largest priority value) needs a
      // new block while a1 and c3 fit their next token in the blocks they hold.
      const s = new StepScheduler({ ...CFG, policy: 'priority', numBlocks: 4 });
      s.add(req('a1', 20, 10, { priority: 0 }));
      s.add(req('b2', 15, 10, { priority: 5 }));
      s.completeStep(s.nextStep(), neverStops);
      s.add(req('c3', 8, 10, { priority: 1 }));
      s.completeStep(s.nextStep(), neverStops);
      const plan = s.nextStep();
      expect(plan.preempted).toEqual(['b2']);
      // vLLM breaks out of the running loop there: c3 waits for the next step although it fits.
      expect(ids(plan)).toEqual(['a1']);
      expect(plan.started).toEqual([]);
      s.completeStep(plan, neverStops);
      expect(ids(s.nextStep())).toEqual(['a1', 'c3']);
    });

    it('a waiting request, whatever its priority, preempts nobody: it waits until blocks are freed', () => {
      const s = new StepScheduler({ ...CFG, policy: 'priority', numBlocks: 4 });
      s.add(req('lo1', 48, 10, { priority: 9 }));
      s.completeStep(s.nextStep(), neverStops);
      s.add(req('hi2', 32, 1, { priority: 0 }));
      const { plans, finished } = drain(s);
      expect(plans[0]?.started).toEqual([]);
      expect(finished).toEqual(['lo1', 'hi2']);
      expect(s.totals.preemptions).toBe(0);
    });
  });

  it('abort frees the blocks of a running request and removes a waiting one', () => {
    const s = new StepScheduler({ ...CFG, maxNumSeqs: 1 });
    s.add(req('r1', 64, 100));
    s.add(req('r2', 16, 1));
    s.completeStep(s.nextStep(), neverStops);
    expect(s.kvUsage).toBeGreaterThan(0);
    expect(s.abort('r2')).toBe(true);
    expect(s.abort('r1')).toBe(true);
    expect(s.abort('r1')).toBe(false);
    expect(s.hasWork).toBe(false);
    expect(s.kvUsage).toBe(0);
  });

  it('ends a request on a sampled stop, at max_tokens, and refuses what can never fit', () => {
    const s = new StepScheduler({ ...CFG, numBlocks: 4 });
    s.add(req('r1', 10, 50));
    const out = s.completeStep(s.nextStep(), () => ({ token: 3, stop: true })).sampled;
    expect(out).toEqual([{ id: 'r1', token: 3, first: true, finish: 'stop' }]);
    expect(s.refusal(60, 10)).toMatch(/exceed the KV cache \(64 tokens\)/);
    expect(s.refusal(4000, 100)).toMatch(/exceed max_model_len 4096/);
    expect(() => s.add(req('r2', 60, 10))).toThrow(RangeError);
  });

  it('runs one step at a time: a second plan before the first completed, or a stale plan, is refused', () => {
    const s = new StepScheduler(CFG);
    s.add(req('r1', 16, 3));
    const first = s.nextStep();
    expect(() => s.nextStep()).toThrow(/step 1 is not completed/);
    s.completeStep(first, neverStops);
    expect(() => s.completeStep(first, neverStops)).toThrow(/step 1 is not the step in flight/);
    s.completeStep(s.nextStep(), neverStops);
  });
});
