/**
 * Seeded randomness for workloads and policies: every run with the same seed makes the same requests and the
 * same decisions, so two policies are compared on identical traffic.
 *
 *   uniform      SplitMix32 (Vigna's SplitMix constants on 32 bits), in [0, 1)
 *   exponential  -ln(1 - U) / rate
 *   gamma        Marsaglia & Tsang (2000) for shape >= 1; shape < 1 boosted by U^(1/shape)
 *   zipf         inverse CDF over ranks 1..n, p(k) proportional to k^-s, binary search on the cumulative table
 */

export type Random = () => number;

export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** A child stream, so adding draws to one part of a workload does not shift another part's numbers. */
export function fork(random: Random): Random {
  return seededRandom(Math.floor(random() * 4294967296));
}

export function exponential(random: Random, rate: number): number {
  return -Math.log(1 - random()) / rate;
}

function standardNormal(random: Random): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function gamma(random: Random, shape: number, scale: number): number {
  if (!(shape > 0) || !(scale > 0)) throw new RangeError(`gamma needs shape > 0 and scale > 0`);
  if (shape < 1) return gamma(random, shape + 1, scale) * (1 - random()) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = standardNormal(random);
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = 1 - random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * scale;
  }
}

/** Ranks 0..n-1 (0 the most popular), p(k) proportional to (k+1)^-s. */
export function zipfSampler(n: number, s: number): (random: Random) => number {
  if (!(n >= 1)) throw new RangeError('zipf needs n >= 1');
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += (k + 1) ** -s;
    cdf[k] = sum;
  }
  return (random) => {
    const target = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** An integer uniform in [lo, hi]. */
export function uniformInt(random: Random, lo: number, hi: number): number {
  return lo + Math.min(hi - lo, Math.floor(random() * (hi - lo + 1)));
}
