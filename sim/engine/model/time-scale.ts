/**
 * Simulated time running `factor` times faster than the clock and timers it wraps (--sim-time-scale): a
 * simulated delay of d ms waits d / factor ms, and the simulated clock advances factor ms per ms from the
 * moment it was made. Everything the engine reports (histograms, log lines, start-up seconds) reads this clock,
 * so reported times stay consistent in simulated seconds at any factor.
 */
import type { Clock } from '../../../common/clock.ts';
import type { Timers } from './engine-core.ts';

export interface SimulatedTime {
  clock: Clock;
  timers: Timers;
}

export function scaledTime(clock: Clock, timers: Timers, factor: number): SimulatedTime {
  if (!(factor > 0)) throw new RangeError(`the time scale must be positive, got ${factor}`);
  const origin = clock.now();
  return {
    clock: { now: () => origin + (clock.now() - origin) * factor },
    timers: { set: (fn, ms) => timers.set(fn, ms / factor), clear: (h) => timers.clear(h) },
  };
}
