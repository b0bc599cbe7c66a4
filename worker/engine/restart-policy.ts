/**
 * When to restart an engine that exited: delay = min(initial * 2^(n-1), max) for the n-th consecutive restart,
 * with +-jitter so a fleet of workers whose engines died together (a bad image, a node-wide fault) does not
 * restart in lockstep. An engine that stayed ready for `resetAfterMs` earns a fresh budget: one crash a day is
 * not a crash loop. After `maxRestarts` consecutive restarts the supervisor gives up (FAILED).
 */

export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** 0..1: the delay is multiplied by a factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
  resetAfterMs: number;
  maxRestarts: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
  jitter: 0.2,
  resetAfterMs: 60_000,
  maxRestarts: 10,
};

export type RestartDecision =
  | { t: 'restart'; delayMs: number; consecutive: number }
  | { t: 'give-up'; reason: string };

/**
 * @param consecutive restarts already made since the budget was last reset
 * @param readyForMs how long the engine that just exited had been ready (0 if it never was)
 * @param random a source in [0, 1), injected so tests and the simulator are deterministic
 */
export function decideRestart(
  policy: RestartPolicy,
  consecutive: number,
  readyForMs: number,
  random: () => number,
): RestartDecision {
  const n = readyForMs >= policy.resetAfterMs ? 0 : consecutive;
  if (n >= policy.maxRestarts) {
    return {
      t: 'give-up',
      reason: `restart budget spent: ${n} consecutive restarts (max ${policy.maxRestarts})`,
    };
  }
  return { t: 'restart', delayMs: backoffDelay(policy, n + 1, random), consecutive: n + 1 };
}

/** Exponential backoff with jitter for the n-th attempt (n >= 1). Shared with the registry reconnect loop. */
export function backoffDelay(
  policy: Pick<RestartPolicy, 'initialDelayMs' | 'maxDelayMs' | 'jitter'>,
  n: number,
  random: () => number,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, n - 1));
  const factor = 1 + policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxDelayMs * (1 + policy.jitter), base * factor));
}
