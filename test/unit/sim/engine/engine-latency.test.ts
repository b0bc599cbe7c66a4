import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { engineLatency } from '../../../../sim/engine/engine-latency.ts';
import { parseArgs } from '../../../../sim/engine/options.ts';

function latencyOf(args: string[], env: Record<string, string> = {}) {
  const r = parseArgs(['serve', ...args], env);
  if (r.kind !== 'ok') throw new Error(JSON.stringify(r));
  return engineLatency(r.options);
}

const REPO_PACKAGE_JSON = join(import.meta.dirname, '../../../../package.json');
const FP8_405B = ['meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', '--tensor-parallel-size', '8'];

describe('engineLatency (the step times an engine runs with)', () => {
  it('is the calibrated model by default, from the files vendored in the repository', () => {
    const l = latencyOf(FP8_405B);
    expect(l.kind).toBe('calibrated');
    expect(l.kind === 'calibrated' && l.describe).toContain('llama-3.1-405b-tp8-h100.json');
    const h200 = latencyOf([...FP8_405B, '--sim-gpu-type', 'h200-141g']);
    expect(h200.kind === 'calibrated' && h200.describe).toContain('llama-3.1-405b-tp8-h200.json');
    // The faster GPU's measured kernels make the faster decode step.
    if (l.kind === 'calibrated' && h200.kind === 'calibrated')
      expect(h200.model.stepMs(64, 4096, 0)).toBeLessThan(l.model.stepMs(64, 4096, 0));
  });

  it('honours --sim-ttft-ms / --sim-itl-ms (flag or environment) over the calibration', () => {
    expect(latencyOf([...FP8_405B, '--sim-itl-ms', '5']).kind).toBe('fixed');
    expect(latencyOf(FP8_405B, { CORRAL_SIM_TTFT_MS: '20' }).kind).toBe('fixed');
  });

  it('falls back to the fixed defaults for a model with no calibration, and says why', () => {
    const l = latencyOf(['tiny-model']);
    expect(l).toEqual({
      kind: 'fixed',
      describe:
        'fixed latency: 50 ms per step that prefills, 10 ms per decode step (not calibrated: tiny-model names no Llama 3.1 size)',
    });
  });

  it('is an error when an explicit --sim-calibration cannot serve the model', () => {
    const missing = latencyOf([...FP8_405B, '--sim-calibration', '/nonexistent/calibration']);
    expect(missing.kind === 'error' && missing.message).toMatch(/^--sim-calibration: cannot read/);
    const notCalibration = latencyOf([...FP8_405B, '--sim-calibration', REPO_PACKAGE_JSON]);
    expect(notCalibration.kind === 'error' && notCalibration.message).toContain(
      'is not a calibration file: no model, layer_gemms_ms_per_rank',
    );
    const unknown = latencyOf(['tiny-model', '--sim-calibration', `${import.meta.dirname}`]);
    expect(unknown).toEqual({
      kind: 'error',
      message: `--sim-calibration ${import.meta.dirname}: tiny-model names no Llama 3.1 size`,
    });
  });
});
