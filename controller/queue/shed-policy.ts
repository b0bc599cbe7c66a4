/**
 * Load shedding: refuse new work when it would wait longer than the deployment's bound, so that admitted
 * requests keep their latency and the excess learns at once when to come back (issue 5: overload at 5x
 * capacity). Pure.
 *
 *   rate          = requests handed out while draining / that time (below)    (requests per ms)
 *   expectedWait  = ahead / rate   where ahead = requests waiting in this class and the classes above it
 *   shed when     expectedWait > maxWaitMs, or ahead >= maxDepth (a memory bound even when nothing drains)
 *   retryAfter    = expectedWait - maxWaitMs  (the time for the queue, draining at `rate` with no new
 *                   arrivals, to fall back under the bound), at least minRetryAfterMs
 *
 * The rate is the queue's drain rate: requests handed out while a backlog waited, per ms of such time
 * (RequestQueue.load: while arrivals set the pace, the dispatch rate says nothing about how fast a backlog drains).
 * With no drain rate known (never measured: a new deployment, groups still loading a 405B model) nothing says
 * how long a wait is: then only maxDepth sheds, and its retry hint is maxWaitMs.
 * Classes below the request's own are not counted: the priority order serves them later (their reserved share
 * slows the drain by at most the sum of the reserves, which the rate measured already reflects).
 */
import { classRank, PRIORITY_CLASSES, type PriorityClass } from './priority-class.ts';

export interface ShedOptions {
  /** Bound on the expected wait of a new request. */
  maxWaitMs: number;
  /** Bound on the number of requests waiting ahead of a new one. */
  maxDepth: number;
  /** Floor of the retry hint, so clients do not hammer the gateway. Default 100 ms. */
  minRetryAfterMs?: number;
}

export interface QueueLoad {
  waiting: Readonly<Record<PriorityClass, number>>;
  /** Requests handed out while a backlog waited, during `windowMs` of such time (0 / 0: unknown). */
  dispatchedInWindow: number;
  windowMs: number;
}

export type ShedDecision =
  | { t: 'admit'; expectedWaitMs: number | undefined }
  | { t: 'shed'; expectedWaitMs: number | undefined; retryAfterMs: number; reason: 'wait' | 'depth' };

export function waitingAhead(load: QueueLoad, cls: PriorityClass): number {
  let ahead = 0;
  for (const c of PRIORITY_CLASSES) if (classRank(c) <= classRank(cls)) ahead += load.waiting[c];
  return ahead;
}

export function expectedWaitMs(load: QueueLoad, cls: PriorityClass): number | undefined {
  const ahead = waitingAhead(load, cls);
  if (ahead === 0) return 0;
  if (load.dispatchedInWindow <= 0 || load.windowMs <= 0) return undefined;
  return (ahead * load.windowMs) / load.dispatchedInWindow;
}

export function decideShed(load: QueueLoad, cls: PriorityClass, options: ShedOptions): ShedDecision {
  const minRetry = options.minRetryAfterMs ?? 100;
  const wait = expectedWaitMs(load, cls);
  if (waitingAhead(load, cls) >= options.maxDepth) {
    const over = wait === undefined ? options.maxWaitMs : Math.max(0, wait - options.maxWaitMs);
    return {
      t: 'shed',
      expectedWaitMs: wait,
      retryAfterMs: Math.max(minRetry, Math.ceil(over)),
      reason: 'depth',
    };
  }
  if (wait !== undefined && wait > options.maxWaitMs)
    return {
      t: 'shed',
      expectedWaitMs: wait,
      retryAfterMs: Math.max(minRetry, Math.ceil(wait - options.maxWaitMs)),
      reason: 'wait',
    };
  return { t: 'admit', expectedWaitMs: wait };
}
