/**
 * Load shedding: refuse new work when it would wait longer than the deployment's bound, so that admitted
 * requests keep their latency and the excess learns at once when to come back (issue 5: overload at 5x
 * capacity). Pure.
 *
 *   drain         = requests handed out while a backlog waited / that time          (requests per ms)
 *   round         = the longest usual gap between those hand-outs (sum of gap^2 / sum of gap)
 *   expectedWait  = 0 when nobody waits ahead, else (ahead + 1) / drain + round
 *                   where ahead = requests waiting in this class and the classes above it
 *   shed when     expectedWait > 0.9 maxWaitMs (WAIT_HEADROOM), or ahead >= maxDepth (a memory bound even
 *                 when nothing drains)
 *   retryAfter    = expectedWait - 0.9 maxWaitMs  (the time for the queue, draining at `drain` with no new
 *                   arrivals, to fall back under that), at least minRetryAfterMs
 *
 * Why the round: groups free their sequences in bursts (a batch of requests finishing together), so a queue
 * drains in steps, and a request waits until the step that reaches it: up to one round past ahead / drain.
 * Without it an estimate of exactly the bound admits requests that wait up to a round longer.
 *
 * The drain rate is measured while a backlog waited (RequestQueue.load: while arrivals set the pace, the
 * dispatch rate says nothing about how fast a backlog drains). Before any is measured (a new deployment, the
 * first burst after a cold start) the deployment's ready sequences and a conservative service time stand in:
 * drain = slots / serviceMs, round = serviceMs (and while the measurement is young, see drainOf). With neither
 * (no ready group yet, or no service time) nothing says how long a wait is: then only maxDepth sheds, and its
 * retry hint is maxWaitMs.
 *
 * Until a measured drain has replaced it, that estimate alone does not refuse a request while fewer than
 * MEASURABLE_BACKLOG wait ahead of it: the drain is measured from one take to the next while requests waited
 * (queue-scripts.ts), so it needs two waiting at once; an estimate that refused every second waiting request (a
 * service time near maxWaitMs, a group of few sequences) would never let a measurement start or mature, and
 * would stand for good.
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
  /** A conservative time one request holds a sequence, assumed until a drain rate is measured. Absent: none. */
  serviceMs?: number;
}

export interface QueueLoad {
  waiting: Readonly<Record<PriorityClass, number>>;
  /** Requests handed out while a backlog waited, during `windowMs` of such time (0 / 0: unknown). */
  dispatchedInWindow: number;
  windowMs: number;
  /** The drain's round: sum of squared gaps between hand-outs / their sum, ms (0: unknown). */
  roundMs?: number;
  /** Sequences the deployment's ready groups hold (groups x max-num-seqs; 0 or absent: unknown). */
  slots?: number;
}

export type ShedDecision =
  | { t: 'admit'; expectedWaitMs: number | undefined }
  | { t: 'shed'; expectedWaitMs: number | undefined; retryAfterMs: number; reason: 'wait' | 'depth' };

export function waitingAhead(load: QueueLoad, cls: PriorityClass): number {
  let ahead = 0;
  for (const c of PRIORITY_CLASSES) if (classRank(c) <= classRank(cls)) ahead += load.waiting[c];
  return ahead;
}

/**
 * A drain measured over few rounds counts the rest of its first round's batch in next to no time (the take
 * that starts the measurement is not counted, the takes right after it are), so it runs fast; until it covers
 * MATURE_ROUNDS rounds, the slower of it and the capacity's estimate stands.
 */
const MATURE_ROUNDS = 5;
/**
 * The share of maxWaitMs kept free of expected wait: under overload every admission is made at an expected wait
 * near the bound, and the drain measured over the last window lags a service that slows (bench:overload: with
 * none, 2% of admitted requests waited up to 7% past the bound).
 */
const WAIT_HEADROOM = 0.1;
/** Requests waiting at once that a drain measurement needs (a take that leaves one waiting, then the next). */
const MEASURABLE_BACKLOG = 2;

/** A drain measured over enough of its own rounds to stand alone. */
function isMature(load: QueueLoad): boolean {
  if (load.dispatchedInWindow <= 0 || load.windowMs <= 0) return false;
  return load.windowMs >= MATURE_ROUNDS * (load.roundMs ?? 0);
}

/** How fast the queue drains and in what steps: measured, else from capacity, else unknown. */
export function drainOf(
  load: QueueLoad,
  serviceMs: number | undefined,
): { perMs: number; roundMs: number } | undefined {
  const measured =
    load.dispatchedInWindow > 0 && load.windowMs > 0
      ? { perMs: load.dispatchedInWindow / load.windowMs, roundMs: load.roundMs ?? 0 }
      : undefined;
  const slots = load.slots ?? 0;
  const capacity =
    slots > 0 && serviceMs !== undefined && serviceMs > 0
      ? { perMs: slots / serviceMs, roundMs: serviceMs }
      : undefined;
  if (measured === undefined || capacity === undefined) return measured ?? capacity;
  if (isMature(load)) return measured;
  return {
    perMs: Math.min(measured.perMs, capacity.perMs),
    roundMs: Math.max(measured.roundMs, capacity.roundMs),
  };
}

export function expectedWaitMs(load: QueueLoad, cls: PriorityClass, serviceMs?: number): number | undefined {
  const ahead = waitingAhead(load, cls);
  if (ahead === 0) return 0;
  const drain = drainOf(load, serviceMs);
  if (drain === undefined) return undefined;
  return (ahead + 1) / drain.perMs + drain.roundMs;
}

export function decideShed(load: QueueLoad, cls: PriorityClass, options: ShedOptions): ShedDecision {
  const minRetry = options.minRetryAfterMs ?? 100;
  const wait = expectedWaitMs(load, cls, options.serviceMs);
  if (waitingAhead(load, cls) >= options.maxDepth) {
    const over = wait === undefined ? options.maxWaitMs : Math.max(0, wait - options.maxWaitMs);
    return {
      t: 'shed',
      expectedWaitMs: wait,
      retryAfterMs: Math.max(minRetry, Math.ceil(over)),
      reason: 'depth',
    };
  }
  const measuring = !isMature(load) && waitingAhead(load, cls) < MEASURABLE_BACKLOG;
  const aim = options.maxWaitMs * (1 - WAIT_HEADROOM);
  if (wait !== undefined && wait > aim && !measuring)
    return {
      t: 'shed',
      expectedWaitMs: wait,
      retryAfterMs: Math.max(minRetry, Math.ceil(wait - aim)),
      reason: 'wait',
    };
  return { t: 'admit', expectedWaitMs: wait };
}
