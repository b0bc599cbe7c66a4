import { describe, expect, it } from 'vitest';
import { replay, type Workload } from '../../../bench/sim-fidelity/virtual-replay.ts';

const every10ms = { stepMs: () => 10 };
const base: Workload = {
  arrival: { kind: 'all-at-once', requests: 2 },
  inputTokens: 0,
  outputTokens: 0,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 256,
  kvBlocks: 100,
};

describe('replay with per-request lengths (a dataset run)', () => {
  it('gives each request its own input and output tokens; TPOT averages requests of more than one token', () => {
    // Step 1 prefills both (t=10 ms, first tokens); request 0 ends there; request 1 decodes at 20 and 30 ms.
    const r = replay(
      {
        ...base,
        lengths: [
          [16, 1],
          [24, 3],
        ],
      },
      every10ms,
    );
    expect(r.durationS).toBeCloseTo(0.03);
    expect(r.steps).toBe(3);
    expect(r.inputTokensPerS).toBeCloseTo(40 / 0.03);
    expect(r.outputTokensPerS).toBeCloseTo(4 / 0.03);
    expect(r.requestsPerS).toBeCloseTo(2 / 0.03);
    expect(r.meanTtftMs).toBeCloseTo(10);
    expect(r.meanTpotMs).toBeCloseTo(10);
  });

  it('refuses a run with fewer lengths than requests', () => {
    expect(() => replay({ ...base, lengths: [[16, 1]] }, every10ms)).toThrow('2 requests but lengths for 1');
  });
});
