/**
 * Pure: a batch's lifecycle, its progress figures, and what the driver does with a line the queue refused.
 *
 * States (the names of OpenAI's Batch API):
 *   validating   the input file is being read and every line parsed; bad lines get their error result now
 *   in_progress  lines are fed to the queue, at most maxOutstanding at a time, and their results collected
 *   cancelling   a cancel came: queued lines are removed, running ones aborted, unfed ones marked cancelled
 *   completed    every line has a result (a 200 response or an error)
 *   expired      the completion window ended first: lines not yet fed got a batch_expired error
 *   cancelled    cancelling ended: every line has a result
 *   failed       the input could not be processed at all (its file is gone); `errors` says why
 * Transitions are guarded (nextStatus); the store applies them atomically with the same table.
 */
import type { CorralError } from '../../common/errors.ts';

export const BATCH_STATUSES = [
  'validating',
  'in_progress',
  'cancelling',
  'completed',
  'expired',
  'cancelled',
  'failed',
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** Each state and the states it may move to. */
export const TRANSITIONS: Readonly<Record<BatchStatus, readonly BatchStatus[]>> = {
  validating: ['in_progress', 'cancelling', 'failed'],
  in_progress: ['completed', 'expired', 'cancelling'],
  cancelling: ['cancelled'],
  completed: [],
  expired: [],
  cancelled: [],
  failed: [],
};

export function isBatchStatus(v: unknown): v is BatchStatus {
  return typeof v === 'string' && (BATCH_STATUSES as readonly string[]).includes(v);
}

export function isTerminal(s: BatchStatus): boolean {
  return TRANSITIONS[s].length === 0;
}

export function canMove(from: BatchStatus, to: BatchStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** What the store counts for a batch. */
export interface BatchCounts {
  /** Requests in the file (non-blank lines); 0 while validating. */
  total: number;
  /** Lines with a 200 response. */
  completed: number;
  /** Lines with an error result (a bad line, a refused or failed request, cancelled, expired). */
  failed: number;
  /** Lines in the request queue now (fed, no result yet). */
  outstanding: number;
}

export interface BatchProgress {
  status: BatchStatus;
  total: number;
  completed: number;
  failed: number;
  /** Fed to the queue and not ended (waiting there or running on an engine). */
  in_progress: number;
  /** Not fed yet. */
  pending: number;
}

export function progressOf(status: BatchStatus, c: BatchCounts): BatchProgress {
  const done = c.completed + c.failed;
  return {
    status,
    total: c.total,
    completed: c.completed,
    failed: c.failed,
    in_progress: c.outstanding,
    pending: Math.max(0, c.total - done - c.outstanding),
  };
}

/** Every line has its result: the batch may end. */
export function allDone(c: BatchCounts): boolean {
  return c.total > 0 ? c.completed + c.failed >= c.total : true;
}

/**
 * A line the queue (or admission) refused when it was fed:
 *   wait  a refusal that passes by itself: over budget or the queue shedding (resource_exhausted with a
 *         retry-after), or no group ready yet (unavailable); the line is fed again after `ms`
 *   fail  anything else (context too long, a prompt over the size limit, a tenant disabled): the line's result
 * A batch must not bypass its tenant's budgets, nor fill the queue past its shedding bound; it waits instead.
 */
export type Refusal = { t: 'wait'; ms: number } | { t: 'fail' };

/**
 * A retry-after hint is re-checked after at most this long: a shedding queue's hint can be maxWaitMs (an hour)
 * when it cannot tell how fast it drains, and capacity freed sooner (a seat, a budget refill) should be used.
 * A refused submit costs one Redis script, so checking early is cheap.
 */
export const MAX_REFUSAL_WAIT_MS = 5000;

export function onRefusal(e: CorralError, pollMs: number): Refusal {
  if (e.code === 'resource_exhausted') {
    const ms = e.context.retryAfterMs;
    if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0)
      return { t: 'wait', ms: Math.min(ms, MAX_REFUSAL_WAIT_MS) };
    return { t: 'fail' };
  }
  if (e.code === 'unavailable') return { t: 'wait', ms: pollMs * 4 };
  return { t: 'fail' };
}
