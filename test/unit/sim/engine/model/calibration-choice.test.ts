import { describe, expect, it } from 'vitest';
import {
  type CalibrationEntry,
  chooseCalibration,
  llamaSizeOf,
  scaleCalibration,
} from '../../../../../sim/engine/model/calibration-choice.ts';
import type { CalibrationFile } from '../../../../../sim/engine/model/latency-model.ts';

function cal(tp: number, ms: number): CalibrationFile {
  return {
    tp,
    model: { hidden: 16384, layers: 126, kv_heads: 8 },
    layer_gemms_ms_per_rank: { bf16: { '1': 2 * ms }, fp8: { '1': ms }, lm_head_bf16: { '1': ms } },
    decode_attn_ms_per_layer_rank: { B1_C1024: ms },
    prefill_attn_ms_per_layer_rank: { '512': ms },
  };
}

const FILES: CalibrationEntry[] = [
  { file: 'llama-3.1-405b-tp8-h100.json', data: cal(8, 1) },
  { file: 'llama-3.1-405b-tp8-h200.json', data: cal(8, 0.7) },
  { file: 'llama-3.1-8b-tp1-h100.json', data: cal(1, 0.1) },
  { file: 'llama-3.1-8b-tp2-h100.json', data: cal(2, 0.05) },
  { file: 'README.md', data: cal(1, 9) },
];

describe('llamaSizeOf', () => {
  it('reads the parameter count of Llama model names only', () => {
    expect(llamaSizeOf('meta-llama/Meta-Llama-3.1-405B-Instruct-FP8')).toBe(405);
    expect(llamaSizeOf('llama-3.1-8b')).toBe(8);
    expect(llamaSizeOf('Qwen/Qwen2-72B')).toBeUndefined();
    expect(llamaSizeOf('m')).toBeUndefined();
  });
});

describe('chooseCalibration', () => {
  it('takes the measured file of the GPU and TP size unscaled', () => {
    const c = chooseCalibration(FILES, { model: 'Llama-3.1-405B', tp: 8, gpuType: 'h200-141g' });
    expect(c).toMatchObject({ kind: 'calibrated', file: 'llama-3.1-405b-tp8-h200.json', approximations: [] });
    expect(c.kind === 'calibrated' && c.data).toBe(FILES[1]?.data);
  });

  it('scales the nearest GPU by HBM bandwidth (MI300X from H200: 4.8 / 5.3)', () => {
    const c = chooseCalibration(FILES, { model: 'Llama-3.1-405B', tp: 8, gpuType: 'mi300x-192g' });
    expect(c.kind === 'calibrated' && c.file).toBe('llama-3.1-405b-tp8-h200.json');
    if (c.kind !== 'calibrated') return;
    expect(c.scale.gpu).toBeCloseTo(4.8 / 5.3);
    expect(c.data.layer_gemms_ms_per_rank.fp8['1']).toBeCloseTo((0.7 * 4.8) / 5.3);
    expect(c.approximations[0]).toContain('MI300X-192G not measured');
  });

  it('scales the nearest TP size by what one rank holds; KV heads stop shrinking at TP = KV heads', () => {
    const c = chooseCalibration(FILES, { model: 'Llama-3.1-405B', tp: 16, gpuType: 'h100-80g' });
    expect(c.kind === 'calibrated' && c.scale).toEqual({ gpu: 1, tpCompute: 0.5, tpDecodeAttn: 1 });
    const small = chooseCalibration(FILES, { model: 'llama-3.1-8b', tp: 4, gpuType: 'h100-80g' });
    expect(small.kind === 'calibrated' && small.file).toBe('llama-3.1-8b-tp2-h100.json');
    expect(small.kind === 'calibrated' && small.scale).toEqual({ gpu: 1, tpCompute: 0.5, tpDecodeAttn: 0.5 });
    expect(small.kind === 'calibrated' && small.data.decode_attn_ms_per_layer_rank.B1_C1024).toBeCloseTo(
      0.025,
    );
  });

  it('has no calibrated model for a size never measured or a model that is not Llama', () => {
    expect(chooseCalibration(FILES, { model: 'Llama-3.1-70B', tp: 4, gpuType: 'h100-80g' })).toEqual({
      kind: 'none',
      reason: 'no calibration file for Llama 3.1 70B',
    });
    expect(chooseCalibration(FILES, { model: 'tiny', tp: 1, gpuType: 'h100-80g' }).kind).toBe('none');
  });
});

describe('scaleCalibration', () => {
  it('multiplies every kernel table, attention by its own factor', () => {
    const s = scaleCalibration(cal(8, 1), { gpu: 2, tpCompute: 0.5, tpDecodeAttn: 1 });
    expect(s.layer_gemms_ms_per_rank).toEqual({
      bf16: { '1': 2 },
      fp8: { '1': 1 },
      lm_head_bf16: { '1': 1 },
    });
    expect(s.prefill_attn_ms_per_layer_rank['512']).toBe(1);
    expect(s.decode_attn_ms_per_layer_rank.B1_C1024).toBe(2);
  });
});
