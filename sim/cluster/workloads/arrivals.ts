/**
 * Arrival times of an open-loop workload. The rate ramps linearly from 0 to `ratePerS` over `rampS`, then holds,
 * so caches warm up as they would in a real morning. Arrivals are a renewal process in operational time:
 *
 *   Lambda(t) = r t^2 / (2 R)          for t < R          (the expected arrivals by t)
 *             = r R / 2 + r (t - R)    after
 *   gaps in Lambda-space ~ Gamma(shape 1/cv^2, scale cv^2)  (mean 1; cv = 1 is Poisson, cv > 1 bursty)
 *   t_i = Lambda^-1(sum of gaps)
 */
import { gamma, type Random } from '../random.ts';

export interface ArrivalSpec {
  ratePerS: number;
  durationS: number;
  /** Linear ramp from 0 to the rate; default 0 (the rate from the start). */
  rampS?: number;
  /** Coefficient of variation of the gaps; default 1 (Poisson). */
  burstCv?: number;
}

export function arrivalTimesMs(spec: ArrivalSpec, random: Random): number[] {
  const r = spec.ratePerS;
  const ramp = spec.rampS ?? 0;
  const cv = spec.burstCv ?? 1;
  if (!(r > 0) || !(spec.durationS > 0) || ramp < 0 || !(cv > 0))
    throw new RangeError('arrivals need ratePerS > 0, durationS > 0, rampS >= 0, burstCv > 0');
  const shape = 1 / (cv * cv);
  const inverse = (lambda: number) =>
    ramp > 0 && lambda < (r * ramp) / 2 ? Math.sqrt((2 * ramp * lambda) / r) : ramp / 2 + lambda / r;
  const out: number[] = [];
  let lambda = 0;
  for (;;) {
    lambda += cv === 1 ? -Math.log(1 - random()) : gamma(random, shape, 1 / shape);
    const t = inverse(lambda);
    if (t >= spec.durationS) return out;
    out.push(t * 1000);
  }
}
