/**
 * How long the simulated engine's steps last, decided at start-up:
 *   - --sim-ttft-ms / --sim-itl-ms given (flag or CORRAL_SIM_*): those fixed times, calibration or not (tests pin
 *     short, predictable latencies this way);
 *   - else the calibrated latency model (model/latency-model.ts) when the calibration (vendored, or
 *     --sim-calibration PATH) has a file for the model's Llama 3.1 size, scaled to the GPU and TP size when they
 *     were not measured (model/calibration-choice.ts);
 *   - else the fixed defaults (50 ms for a step that prefills, 10 ms for a decode step), e.g. for a model name
 *     that states no Llama size.
 * An explicit --sim-calibration that cannot be read or has no file for the model is an error (exit 2).
 */
import { resolveCalibration } from './calibration.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from './model/latency-model.ts';
import type { EngineSimOptions } from './options.ts';

export type EngineLatency =
  | { kind: 'calibrated'; model: LatencyModel; describe: string }
  | { kind: 'fixed'; describe: string }
  | { kind: 'error'; message: string };

type LatencyOptions = Pick<
  EngineSimOptions,
  | 'model'
  | 'tensorParallelSize'
  | 'pipelineParallelSize'
  | 'gpuType'
  | 'fp8'
  | 'calibration'
  | 'fixedLatency'
  | 'ttftMs'
  | 'itlMs'
>;

export function engineLatency(o: LatencyOptions): EngineLatency {
  const fixed = (why: string): EngineLatency => ({
    kind: 'fixed',
    describe: `fixed latency: ${o.ttftMs} ms per step that prefills, ${o.itlMs} ms per decode step (${why})`,
  });
  if (o.fixedLatency) return fixed('--sim-ttft-ms / --sim-itl-ms');
  const tp = o.tensorParallelSize;
  const want = { model: o.model, tp, gpuType: o.gpuType };
  let choice: ReturnType<typeof resolveCalibration>;
  try {
    choice = o.calibration === undefined ? resolveCalibration(want) : resolveCalibration(want, o.calibration);
  } catch (e) {
    return { kind: 'error', message: `--sim-calibration: cannot read ${o.calibration}: ${String(e)}` };
  }
  if (choice.kind === 'none') {
    if (o.calibration !== undefined)
      return { kind: 'error', message: `--sim-calibration ${o.calibration}: ${choice.reason}` };
    return fixed(`not calibrated: ${choice.reason}`);
  }
  const model = new LatencyModel(choice.data, {
    ...DEFAULT_LATENCY_PARAMS,
    tp,
    pp: o.pipelineParallelSize,
    fp8: o.fp8,
  });
  const approx = choice.approximations.length > 0 ? `; ${choice.approximations.join('; ')}` : '';
  return {
    kind: 'calibrated',
    model,
    describe: `latency model: ${choice.file} (tp=${tp} pp=${o.pipelineParallelSize} fp8=${o.fp8}${approx}); batch-1 decode step ${model.stepMs(1, 1024, 0).toFixed(2)} ms`,
  };
}
