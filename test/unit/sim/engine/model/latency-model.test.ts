import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../../../sim/cluster/random.ts';
import {
  type CalibrationFile,
  DEFAULT_LATENCY_PARAMS,
  LatencyModel,
  logLog,
} from '../../../../../sim/engine/model/latency-model.ts';

const CAL: CalibrationFile = {
  tp: 1,
  model: { hidden: 4096, layers: 32, kv_heads: 8 },
  layer_gemms_ms_per_rank: {
    bf16: { '1': 0.2, '64': 0.2, '512': 0.4, '8192': 6.4 },
    fp8: { '1': 0.1, '64': 0.1, '512': 0.2, '8192': 3.2 },
    lm_head_bf16: { '1': 0.4, '256': 0.8 },
  },
  decode_attn_ms_per_layer_rank: { B1_C1024: 0.02, B64_C1024: 0.1, B1_C4096: 0.03, B64_C4096: 0.4 },
  prefill_attn_ms_per_layer_rank: { '512': 0.1, '8192': 1.6 },
};

const params = (
  over: Partial<typeof DEFAULT_LATENCY_PARAMS> & { tp?: number; pp?: number; fp8?: boolean } = {},
) => ({
  ...DEFAULT_LATENCY_PARAMS,
  gpuEfficiency: 1,
  stepOverheadMs: 0,
  seqOverheadUs: 0,
  tp: 1,
  pp: 1,
  fp8: false,
  ...over,
});

describe('logLog', () => {
  it('hits measured points and interpolates on log-log axes', () => {
    const pts: [number, number][] = [
      [1, 1],
      [100, 100],
    ];
    expect(logLog(pts, 1)).toBeCloseTo(1);
    expect(logLog(pts, 10)).toBeCloseTo(10);
    expect(logLog(pts, 1000)).toBeCloseTo(1000);
    expect(logLog(pts, 0)).toBe(0);
  });
});

describe('LatencyModel', () => {
  it('sums layers x (GEMM + attention) + LM head at a measured point (TP=1: no all-reduce)', () => {
    const m = new LatencyModel(CAL, params());
    expect(m.kernelMs(64, 4096, 0)).toBeCloseTo(
      32 * (0.2 + 0.4) +
        logLog(
          [
            [1, 0.4],
            [256, 0.8],
          ],
          64,
        ),
    );
  });

  it('grows with batch, context and prefill tokens; FP8 GEMMs are cheaper', () => {
    const m = new LatencyModel(CAL, params());
    expect(m.stepMs(64, 1024, 0)).toBeGreaterThan(m.stepMs(1, 1024, 0));
    expect(m.stepMs(64, 4096, 0)).toBeGreaterThan(m.stepMs(64, 1024, 0));
    expect(m.stepMs(8, 1024, 2048)).toBeGreaterThan(m.stepMs(8, 1024, 0));
    expect(new LatencyModel(CAL, params({ fp8: true })).stepMs(64, 1024, 0)).toBeLessThan(
      m.stepMs(64, 1024, 0),
    );
  });

  it('adds two all-reduces per layer under TP, and PP stages in turn with hops', () => {
    const one = new LatencyModel(CAL, params()).kernelMs(1, 1024, 0);
    const tp2 = new LatencyModel(CAL, params({ tp: 2, linkGBps: 1e12 })).kernelMs(1, 1024, 0);
    expect(tp2 - one).toBeCloseTo(32 * 2 * (DEFAULT_LATENCY_PARAMS.allReduceLatencyUs / 1000));
    const pp2 = new LatencyModel(CAL, params({ pp: 2 }));
    const lm = logLog(
      [
        [1, 0.4],
        [256, 0.8],
      ],
      1,
    );
    expect(pp2.stepMs(1, 1024, 0)).toBeCloseTo(
      2 * ((16 * (one - lm)) / 32 + lm) + DEFAULT_LATENCY_PARAMS.ppHopMs,
    );
  });

  it('applies GPU efficiency and the per-step overhead', () => {
    const k = new LatencyModel(CAL, params()).stepMs(1, 1024, 0);
    expect(
      new LatencyModel(CAL, params({ gpuEfficiency: 0.5, stepOverheadMs: 3 })).stepMs(1, 1024, 0),
    ).toBeCloseTo(2 * k + 3);
  });

  it('adds the per-sequence CPU time for every decode and for a step with a prefill chunk', () => {
    const base = new LatencyModel(CAL, params());
    const perSeq = new LatencyModel(CAL, params({ seqOverheadUs: 100 }));
    expect(perSeq.stepMs(64, 1024, 0) - base.stepMs(64, 1024, 0)).toBeCloseTo(6.4);
    expect(perSeq.stepMs(8, 1024, 512) - base.stepMs(8, 1024, 512)).toBeCloseTo(0.9);
  });

  it('answers a step asked again (memoised batch sizes and token counts) exactly as a fresh model answers it', () => {
    const random = seededRandom(4);
    const steps = Array.from({ length: 400 }, () => [
      Math.floor(random() * 300),
      1 + random() * 6000,
      random() < 0.3 ? Math.floor(random() * 20_000) : 0,
    ]);
    // Fractional and out-of-table arguments are computed, not memoised.
    steps.push([2.5, 100, 0], [0, 0, 3.5], [20_000, 512, 0]);
    const asked = new LatencyModel(CAL, params({ tp: 8 }));
    for (const [b, c, p] of steps) asked.stepMs(b as number, c as number, p as number);
    for (const [b, c, p] of steps.reverse())
      expect(asked.stepMs(b as number, c as number, p as number)).toBe(
        new LatencyModel(CAL, params({ tp: 8 })).stepMs(b as number, c as number, p as number),
      );
  });
});
