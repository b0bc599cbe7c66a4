/**
 * Dispatch order of a deployment's queue: which request goes next. Pure; the Redis queue's Lua scripts
 * (queue-scripts.ts) implement exactly these formulas, and test/integration/controller/queue checks that the
 * Redis queue and MemoryQueue (built on this file) hand out the same sequence.
 *
 * Inside a class, self-clocked weighted fair queueing (SCFQ, Golestani 1994), per tenant t:
 *
 *   inc(r)  = ceil(cost(r) * 1000 / weight(t))        integer milli-units: Redis Lua prints numbers with 14
 *                                                     significant digits, integers survive, fractions would not
 *   F(r)    = max(V_c, F_last(t, c)) + inc(r)         finish tag, fixed at submission
 *   V_c     = F of the request most recently handed out from class c
 *   order   = ascending (F, request id)
 *
 * A tenant with a deep backlog has tags far ahead of V_c, so a newly active tenant (tags start at V_c) is served
 * before most of that backlog: over any busy period each backlogged tenant gets cost in proportion to its
 * weight. An idle tenant banks nothing (its next tag starts at V_c, not at its old F).
 *
 * Between classes, strict priority with a reserved share (so nothing starves):
 *
 *   before each hand-out, each class c with requests waiting earns  credit_c = min(U, credit_c + reserve_c * U);
 *   the highest class with credit_c >= U is served and its credit resets to 0; if none has, the highest
 *   non-empty class is served.  (U = 1,000,000: credits are integers so Lua and JS agree to the unit.)
 *
 * With reserves standard 0.1 and batch 0.05, standard gets >= 1 in 10 hand-outs and batch >= 1 in 20 even
 * while interactive requests never stop coming; when interactive is idle, standard simply goes first. Credit is
 * earned only while waiting, so a class that was idle cannot burst past interactive when it returns.
 */
import { PRIORITY_CLASSES, type PriorityClass } from './priority-class.ts';

export type ClassShares = Readonly<Record<PriorityClass, number>>;

/** Minimum share of hand-outs per class under contention. Interactive needs none: it is first anyway. */
export const DEFAULT_RESERVES: ClassShares = { interactive: 0, standard: 0.1, batch: 0.05 };

export function tagIncrement(cost: number, weight: number): number {
  return Math.max(1, Math.ceil((cost * 1000) / weight));
}

export function finishTag(virtualTime: number, lastTenantTag: number, increment: number): number {
  return Math.max(virtualTime, lastTenantTag) + increment;
}

/** Credits are integer millionths of a hand-out. */
export const CREDIT_UNIT = 1_000_000;

export type Credits = Record<PriorityClass, number>;

export function reserveUnits(reserve: number): number {
  return Math.round(reserve * CREDIT_UNIT);
}

export function zeroCredits(): Credits {
  return { interactive: 0, standard: 0, batch: 0 };
}

/**
 * The class to serve next, given which classes have requests waiting; returns the updated credits.
 * undefined when every class is empty (credits unchanged).
 */
export function pickClass(
  credits: Readonly<Credits>,
  waiting: Readonly<Record<PriorityClass, boolean>>,
  reserves: ClassShares = DEFAULT_RESERVES,
): { cls: PriorityClass; credits: Credits } | undefined {
  const next = { ...credits };
  let highest: PriorityClass | undefined;
  for (const c of PRIORITY_CLASSES) {
    if (!waiting[c]) continue;
    highest ??= c;
    next[c] = Math.min(CREDIT_UNIT, next[c] + reserveUnits(reserves[c]));
  }
  if (highest === undefined) return undefined;
  for (const c of PRIORITY_CLASSES) {
    if (waiting[c] && reserveUnits(reserves[c]) > 0 && next[c] >= CREDIT_UNIT) {
      next[c] = 0;
      return { cls: c, credits: next };
    }
  }
  return { cls: highest, credits: next };
}

export function validateReserves(reserves: ClassShares): string[] {
  const problems: string[] = [];
  let sum = 0;
  for (const c of PRIORITY_CLASSES) {
    const r = reserves[c];
    if (!Number.isFinite(r) || r < 0 || r > 1) problems.push(`reserves.${c}: must be in [0, 1]`);
    else sum += r;
  }
  if (sum > 1) problems.push('reserves: must sum to at most 1');
  return problems;
}
