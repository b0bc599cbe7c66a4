/** No reuse: every prompt is unique, so prefix-aware routing has nothing to win and must not lose to load balancing. */
import { fork, seededRandom, uniformInt } from '../random.ts';
import type { SimRequest, Workload } from '../workload.ts';
import { type ArrivalSpec, arrivalTimesMs } from './arrivals.ts';
import { contentKey } from './prompt-segments.ts';

export interface NoReuseSpec {
  promptTokens: { min: number; max: number };
  outputTokens: { min: number; max: number };
  arrivals: ArrivalSpec;
  tenants?: number;
  warmupS?: number;
  seed: number;
}

export function noReuse(spec: NoReuseSpec): Workload {
  const random = seededRandom(spec.seed);
  const times = arrivalTimesMs(spec.arrivals, fork(random));
  const draws = fork(random);
  const requests = times.map((arrivalMs, id): SimRequest => {
    const promptTokens = uniformInt(draws, spec.promptTokens.min, spec.promptTokens.max);
    return {
      id,
      arrivalMs,
      tenant: `tenant-${uniformInt(draws, 0, (spec.tenants ?? 1) - 1)}`,
      segments: [{ key: contentKey(4, spec.seed, id), tokens: promptTokens }],
      promptTokens,
      outputTokens: uniformInt(draws, spec.outputTokens.min, spec.outputTokens.max),
      outputKey: contentKey(5, spec.seed, id),
    };
  });
  return {
    name: 'no_reuse',
    requests,
    durationMs: spec.arrivals.durationS * 1000,
    warmupMs: (spec.warmupS ?? spec.arrivals.rampS ?? 0) * 1000,
  };
}
