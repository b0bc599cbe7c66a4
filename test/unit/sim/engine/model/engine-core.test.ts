import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../../common/clock.ts';
import { EOT, encodePrompt } from '../../../../../common/tokenizer.ts';
import {
  type End,
  EngineCore,
  type EngineCoreConfig,
  type GenerationRequest,
} from '../../../../../sim/engine/model/engine-core.ts';
import { VirtualTimers } from '../../../../helpers/virtual-timers.ts';

const CFG: EngineCoreConfig = {
  maxNumSeqs: 4,
  schedulingPolicy: 'fcfs',
  ttftMs: 100,
  itlMs: 10,
  output: 'random',
  eosProb: 0,
  defaultSeed: 0,
  kvTokens: 10_000,
};

function setup(over: Partial<EngineCoreConfig> = {}) {
  const clock = new ManualClock(0);
  const timers = new VirtualTimers(clock);
  const core = new EngineCore({ ...CFG, ...over }, clock, timers);
  return { clock, timers, core };
}

function req(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    id: 'r',
    promptIds: encodePrompt('Hello there'),
    maxTokens: 5,
    minTokens: 0,
    ignoreEos: false,
    stop: [],
    seed: 1,
    priority: 0,
    ...over,
  };
}

function sink() {
  const out = { ids: [] as number[], text: '', end: null as End | null, finished: false, firstAt: -1 };
  return {
    out,
    sink: {
      token(id: number, text: string, end: End | null) {
        out.ids.push(id);
        out.text += text;
        if (end) out.end = end;
      },
      finish() {
        out.finished = true;
      },
    },
  };
}

describe('EngineCore', () => {
  it('emits the first token after the TTFT and one per inter-token latency, ending at max_tokens', () => {
    const { timers, core } = setup();
    const s = sink();
    core.submit(req(), s.sink);
    timers.runUntil(99);
    expect(s.out.ids).toHaveLength(0);
    timers.runUntil(100);
    expect(s.out.ids).toHaveLength(1);
    timers.runUntil(140);
    expect(s.out.ids).toHaveLength(5);
    expect(s.out.end).toEqual({ reason: 'length', stopReason: null });
    expect(s.out.finished).toBe(true);
    expect(core.numRunning).toBe(0);
  });

  it('admits at most max-num-seqs requests; the rest wait in FCFS order', () => {
    const { timers, core } = setup({ maxNumSeqs: 2 });
    const sinks = [sink(), sink(), sink()];
    sinks.forEach((s, i) => {
      core.submit(req({ id: `r${i}` }), s.sink);
    });
    timers.runUntil(0);
    expect(core.numRunning).toBe(2);
    expect(core.numWaiting).toBe(1);
    timers.runUntil(140);
    expect(sinks[2]?.out.ids).toHaveLength(0);
    expect(core.numRunning).toBe(1);
    timers.runUntil(1000);
    expect(sinks.every((s) => s.out.finished)).toBe(true);
  });

  it('with the priority policy, a lower priority value runs first', () => {
    const { timers, core } = setup({ maxNumSeqs: 1, schedulingPolicy: 'priority' });
    const order: string[] = [];
    const track = (name: string) => ({ token() {}, finish: () => order.push(name) });
    core.submit(req({ maxTokens: 1 }), track('first'));
    timers.runUntil(0);
    core.submit(req({ maxTokens: 1, priority: 5 }), track('low'));
    core.submit(req({ maxTokens: 1, priority: -1 }), track('high'));
    timers.runUntil(1000);
    expect(order).toEqual(['first', 'high', 'low']);
  });

  it('is deterministic for a (seed, prompt) pair and differs for another seed', () => {
    const run = (seed: number) => {
      const { timers, core } = setup();
      const s = sink();
      core.submit(req({ seed, maxTokens: 20 }), s.sink);
      timers.runUntil(10_000);
      return s.out.ids;
    };
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
  });

  it('stops at a stop string, without the stop string in the text', () => {
    const { timers, core } = setup({ output: 'echo' });
    const s = sink();
    core.submit(
      req({ promptIds: encodePrompt('alpha beta gamma delta'), maxTokens: 50, stop: [' gamma'] }),
      s.sink,
    );
    timers.runUntil(10_000);
    expect(s.out.text).toBe('alpha beta');
    expect(s.out.end).toEqual({ reason: 'stop', stopReason: ' gamma' });
  });

  it('samples EOS unless ignore_eos, and never before min_tokens', () => {
    const eos = (over: Partial<GenerationRequest>) => {
      const { timers, core } = setup({ eosProb: 1 });
      const s = sink();
      core.submit(req({ maxTokens: 8, ...over }), s.sink);
      timers.runUntil(10_000);
      return s.out;
    };
    expect(eos({}).ids).toEqual([EOT]);
    expect(eos({}).end).toEqual({ reason: 'stop', stopReason: null });
    expect(eos({ minTokens: 3 }).ids).toHaveLength(4);
    expect(eos({ ignoreEos: true }).ids).toHaveLength(8);
  });

  it('an aborted request frees its slot for a waiting one at the next step and produces nothing more', () => {
    const { timers, core } = setup({ maxNumSeqs: 1 });
    const a = sink();
    const b = sink();
    const abort = core.submit(req({ maxTokens: 100 }), a.sink);
    core.submit(req(), b.sink);
    timers.runUntil(120);
    const before = a.out.ids.length;
    abort();
    abort();
    expect(core.numRunning).toBe(0);
    expect(core.numWaiting).toBe(1);
    timers.runUntil(130);
    expect(core.numRunning).toBe(1);
    expect(core.numWaiting).toBe(0);
    timers.runUntil(10_000);
    expect(a.out.ids).toHaveLength(before);
    expect(a.out.finished).toBe(false);
    expect(b.out.finished).toBe(true);
  });

  it('counts metrics from events: histogram counts equal finished requests, ITL one per later token', () => {
    const { timers, core } = setup();
    for (let i = 0; i < 3; i++) core.submit(req({ maxTokens: 4 }), sink().sink);
    timers.runUntil(10_000);
    const m = core.metrics;
    expect(m.ttft.total).toBe(3);
    expect(m.e2e.total).toBe(3);
    expect(m.itl.total).toBe(9);
    expect(m.generationTokens).toBe(12);
    expect(m.success.length).toBe(3);
    const text = m.render('m', { running: 0, waiting: 0, kvUsage: 0 });
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",model_name="m",le="0.1"} 3');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",model_name="m",le="0.08"} 0');
    expect(text).toContain('vllm:e2e_request_latency_seconds_count{engine="0",model_name="m"} 3');
  });

  it('with a latency model, the first token waits a prefill step and later ones a decode step of the batch', () => {
    const steps: [number, number, number][] = [];
    const latency = {
      stepMs(decodeSeqs: number, meanContext: number, prefillTokens: number) {
        steps.push([decodeSeqs, meanContext, prefillTokens]);
        return 1 + decodeSeqs + prefillTokens;
      },
    };
    const { timers, core } = setup({ latency });
    const s = sink();
    core.submit(req({ maxTokens: 2 }), s.sink);
    const promptLen = req().promptIds.length;
    timers.runUntil(1 + promptLen - 1);
    // Admitted into an empty batch: one step that prefills the prompt.
    expect(steps[0]).toEqual([0, 0, promptLen]);
    expect(s.out.ids).toHaveLength(0);
    timers.runUntil(1 + promptLen);
    expect(s.out.ids).toHaveLength(1);
    // The next token: a decode step of the one running sequence (context = prompt + 1 generated).
    expect(steps[1]).toEqual([1, promptLen + 1, 0]);
    timers.runUntil(1000);
    expect(s.out.finished).toBe(true);
  });

  describe("on a host whose timers fire late (a busy CPU), simulated time keeps the GPU's schedule", () => {
    /** A sink that records the simulated time of each token. */
    function timed(clock: ManualClock) {
      const at: number[] = [];
      return {
        at,
        sink: {
          token: () => void at.push(clock.now()),
          finish() {},
        },
      };
    }

    it('steps after a late one start when it was due, so the lateness does not accumulate', () => {
      const { clock, timers, core } = setup();
      const a = timed(clock);
      core.submit(req({ maxTokens: 5 }), a.sink);
      timers.runUntil(100);
      // Decode steps are due at 110, 120, 130, 140; the host is blocked until 135.
      timers.runLate(135);
      expect(a.at).toEqual([100, 135, 135, 135]);
      timers.runUntil(140);
      expect(a.at).toEqual([100, 135, 135, 135, 140]);
    });

    it("an idle engine's step starts when the request arrived, however late its turn comes", () => {
      const { clock, timers, core } = setup();
      const a = timed(clock);
      core.submit(req({ maxTokens: 1 }), a.sink);
      timers.runLate(35);
      timers.runUntil(99);
      expect(a.at).toEqual([]);
      timers.runUntil(100);
      expect(a.at).toEqual([100]);
    });

    it('a request that arrives while a late step end is pending waits for a step that starts after it arrived', () => {
      const { clock, timers, core } = setup();
      core.submit(req({ maxTokens: 50 }), sink().sink);
      timers.runUntil(100);
      // The decode step due at 110 ends late: the host is blocked from 105 to 125, and b arrives at 125.
      clock.set(125);
      const b = timed(clock);
      core.submit(req({ id: 'b' }), b.sink);
      expect(core.numWaiting).toBe(1);
      timers.runLate(125);
      // Steps [100, 110] and [110, 120] were planned before b came; [120, 130] is running when it does.
      timers.runUntil(229);
      expect(b.at).toEqual([]);
      timers.runUntil(230);
      expect(b.at).toEqual([230]);
    });

    it('an engine left idle by a late last step starts the next one when the request arrived', () => {
      const { clock, timers, core } = setup();
      const a = timed(clock);
      core.submit(req({ maxTokens: 2 }), a.sink);
      timers.runUntil(100);
      // a's last step is due at 110; the host is blocked until 130, and b arrived at 125.
      clock.set(125);
      const b = timed(clock);
      core.submit(req({ id: 'b' }), b.sink);
      timers.runLate(130);
      expect(a.at).toEqual([100, 130]);
      timers.runUntil(224);
      expect(b.at).toEqual([]);
      timers.runUntil(225);
      expect(b.at).toEqual([225]);
    });

    it('a request aborted before it joined a step never reaches the scheduler', () => {
      const { timers, core } = setup();
      const a = sink();
      core.submit(req({ maxTokens: 3 }), a.sink);
      timers.runUntil(105);
      const b = sink();
      const abort = core.submit(req({ id: 'b' }), b.sink);
      expect(core.numWaiting).toBe(1);
      abort();
      expect(core.numWaiting).toBe(0);
      timers.runUntil(10_000);
      expect(a.out.finished).toBe(true);
      expect(b.out.ids).toHaveLength(0);
      expect(core.metrics.ttft.total).toBe(1);
    });
  });

  it('caches prefixes in whole blocks of --block-size tokens', () => {
    const hitTokens = (blockSize: number) => {
      const { timers, core } = setup({ blockSize });
      const shared = Array.from({ length: 48 }, (_, i) => 100 + i);
      core.submit(req({ id: 'a', promptIds: [...shared, 1, 2, 3], maxTokens: 1 }), sink().sink);
      timers.runUntil(1000);
      core.submit(req({ id: 'b', promptIds: [...shared, 4, 5, 6], maxTokens: 1 }), sink().sink);
      timers.runUntil(2000);
      return core.metrics.prefixHits;
    };
    // 48 shared tokens: three full blocks of 16, but only one full block of 32.
    expect(hitTokens(16)).toBe(48);
    expect(hitTokens(32)).toBe(32);
  });
});
