/** vLLM's V1 metrics counted from the simulated events of the engine core running the step scheduler. */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../../common/clock.ts';
import { CALIBRATION_DIR, loadCalibration } from '../../../../../sim/engine/calibration.ts';
import {
  EngineCore,
  type EngineCoreConfig,
  type GenerationRequest,
  type GenerationSink,
} from '../../../../../sim/engine/model/engine-core.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from '../../../../../sim/engine/model/latency-model.ts';
import { scaledTime } from '../../../../../sim/engine/model/time-scale.ts';
import { VirtualTimers } from '../../../../helpers/virtual-timers.ts';

const CFG: EngineCoreConfig = {
  maxNumSeqs: 8,
  maxNumBatchedTokens: 512,
  maxModelLen: 4096,
  schedulingPolicy: 'fcfs',
  ttftMs: 50,
  itlMs: 10,
  output: 'random',
  eosProb: 0,
  defaultSeed: 0,
  kvTokens: 100_000,
};

function setup(over: Partial<EngineCoreConfig> = {}) {
  const clock = new ManualClock(0);
  const timers = new VirtualTimers(clock);
  return { clock, timers, core: new EngineCore({ ...CFG, ...over }, clock, timers) };
}

const prompt = (len: number, salt: number) => Array.from({ length: len }, (_, i) => 1000 + salt * 7919 + i);

function req(promptIds: number[], over: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    id: 'r',
    promptIds,
    maxTokens: 30,
    minTokens: 0,
    ignoreEos: false,
    stop: [],
    seed: 1,
    priority: 0,
    ...over,
  };
}

function tracker() {
  const t = { tokens: 0, finished: false };
  const sink: GenerationSink = {
    token() {
      t.tokens++;
    },
    finish() {
      t.finished = true;
    },
  };
  return { t, sink };
}

describe('engine metrics', () => {
  it('histogram counts equal request counts, through preemption, EOS, max_tokens and an abort', () => {
    // 12 blocks of 16 tokens for 6 requests of 40 prompt tokens growing by up to 60: preemption is certain.
    const { timers, core } = setup({ kvTokens: 12 * 16, maxNumSeqs: 4, eosProb: 0.03 });
    const runs = Array.from({ length: 6 }, (_, i) => {
      const r = tracker();
      return { ...r, abort: core.submit(req(prompt(40, i), { seed: i, maxTokens: 60 }), r.sink) };
    });
    timers.runUntil(300);
    const aborted = runs[5];
    aborted?.abort();
    timers.runUntil(1_000_000);
    const m = core.metrics;
    const finished = runs.filter((r) => r.t.finished).length;
    const withFirstToken = runs.filter((r) => r.t.tokens > 0).length;
    expect(finished).toBe(5);
    expect(m.preemptions).toBeGreaterThan(0);
    expect(m.success.stop).toBeGreaterThan(0);
    expect(m.success.length).toBeGreaterThan(0);
    expect(m.success.stop + m.success.length).toBe(finished);
    // vLLM 0.11 records no per-request stats on abort (the finished_reason="abort" series stays 0).
    expect(m.success.abort).toBe(0);
    for (const h of [m.e2e, m.queue, m.prefill, m.decode]) expect(h.total).toBe(finished);
    expect(m.ttft.total).toBe(withFirstToken);
    expect(m.itl.total).toBe(m.generationTokens - withFirstToken);
    expect(m.generationTokens).toBe(runs.reduce((a, r) => a + r.t.tokens, 0));
    expect(core.kvUsage).toBe(0);
    const text = m.render('m', { running: 0, waiting: 0, kvUsage: core.kvUsage });
    expect(text).toContain(`vllm:num_preemptions_total{engine="0",model_name="m"} ${m.preemptions}`);
    expect(text).toContain(`vllm:request_success_total{engine="0",model_name="m",finished_reason="abort"} 0`);
    expect(text).toContain(`vllm:request_queue_time_seconds_count{engine="0",model_name="m"} ${finished}`);
  });

  it('reports KV usage and running/waiting from the scheduler while requests run', () => {
    const { timers, core } = setup({ maxNumSeqs: 2 });
    for (let i = 0; i < 3; i++) core.submit(req(prompt(100, i)), tracker().sink);
    timers.runUntil(0);
    expect([core.numRunning, core.numWaiting]).toEqual([2, 1]);
    // 2 x ceil(100 / 16) = 14 blocks of 6250.
    expect(core.kvUsage).toBeCloseTo(14 / 6250, 9);
  });

  it('counts prefix hits in tokens, and a cached prefix shortens the time to first token', () => {
    const { data } = loadCalibration(CALIBRATION_DIR, 'llama-3.1-405b', 8, 'h100-80g');
    const latency = new LatencyModel(data, { ...DEFAULT_LATENCY_PARAMS, tp: 8, pp: 1, fp8: true });
    const { timers, core } = setup({ latency, maxNumBatchedTokens: 8192 });
    const shared = prompt(2000, 1);
    core.submit(req(shared, { maxTokens: 1 }), tracker().sink);
    timers.runUntil(10_000);
    const first = core.metrics.ttft.sumSeconds;
    core.submit(req([...shared, 5, 6, 7], { maxTokens: 1 }), tracker().sink);
    timers.runUntil(20_000);
    const second = core.metrics.ttft.sumSeconds - first;
    expect(core.metrics.prefixQueries).toBe(2000 + 2003);
    // The 125 full blocks of the shared 2000 tokens.
    expect(core.metrics.prefixHits).toBe(2000);
    expect(second).toBeLessThan(first / 2);
  });

  it('under a time scale, delays are shorter in wall time and every observed time is simulated', () => {
    const wall = new ManualClock(1000);
    const timers = new VirtualTimers(wall);
    const sim = scaledTime(wall, timers, 4);
    const core = new EngineCore({ ...CFG, ttftMs: 100, itlMs: 20 }, sim.clock, sim.timers);
    const r = tracker();
    core.submit(req(prompt(10, 1), { maxTokens: 3 }), r.sink);
    timers.runUntil(1000 + 25 + 5 + 5);
    expect(r.t.finished).toBe(true);
    expect(sim.clock.now()).toBe(1000 + 140);
    expect(core.metrics.ttft.sumSeconds).toBeCloseTo(0.1, 9);
    expect(core.metrics.e2e.sumSeconds).toBeCloseTo(0.14, 9);
  });
});
