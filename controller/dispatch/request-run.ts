/**
 * One attempt of a taken request on one group: continue it from its stream log (attempt-plan.ts), call
 * Worker.Generate on the group's leader, append every event to the log, and say how it ended. Settling the
 * queue entry is the dispatcher's job; this only reports.
 *
 * Endings:
 *   finished  Finished is in the log (or was already: an earlier owner wrote it and died before settling)
 *   failed    the request cannot succeed anywhere (a bad request, its deadline): the client gets this error
 *   retry     the group failed (stream broke with UNAVAILABLE/INTERNAL, or ended without Finished): continue
 *             on another group
 *   stopped   the dispatcher aborted it (cancel, lease lost, group gone, shutdown): it knows why
 * A delta with text but no token (a detokenizer holding back bytes) carries its text into the next delta,
 * because the log indexes deltas by token.
 */
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import { CorralError } from '../../common/errors.ts';
import { fromServiceError, isServiceError } from '../../common/grpc-status.ts';
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  TRACEPARENT,
} from '../../common/trace-context.ts';
import type { GenerateEvent, GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';
import type { WorkerClients } from '../gateway/worker-clients.ts';
import type { LiveFeed } from '../queue/live-feed.ts';
import type { TakenRequest } from '../queue/request-queue.ts';
import { START, type StreamLog } from '../queue/stream-log.ts';
import { completedFinished, planAttempt, requestOf, shiftEvent } from './attempt-plan.ts';
import { LogWriter } from './log-writer.ts';

export type RunEnd =
  /** settled: its queue entry is finished already (with the Finished's append: RunDeps.finishAs) */
  | { t: 'finished'; settled?: boolean }
  | { t: 'failed'; error: CorralError }
  | { t: 'retry'; why: string }
  | { t: 'stopped' };

export interface RunTarget {
  engineId: string;
  workerAddress: string;
  /** Called once, when the first token streams back (the dispatcher's prefill backlog settles). */
  onFirstToken?: () => void;
}

export interface RunDeps {
  log: StreamLog;
  workers: WorkerClients;
  clock: Clock;
  /** This process's live feed: events go to a client streamed here as soon as they are in the log. */
  live?: LiveFeed;
  /** The owner the run holds the request for: the Finished's append also finishes it in the queue. */
  finishAs?: { owner: string; retainMs: number };
}

/** How long a worker's stream may stay open after its Finished before the call is cancelled. */
const END_AFTER_FINISHED_MS = 1000;

/** Worker statuses that mean "this group failed", not "this request is bad": continue elsewhere. */
const GROUP_FAILURES: ReadonlySet<string> = new Set(['unavailable', 'internal', 'cancelled']);

export async function runAttempt(
  deps: RunDeps,
  t: TakenRequest,
  target: RunTarget,
  signal: AbortSignal,
): Promise<RunEnd> {
  let req: GenerateRequest;
  try {
    req = requestOf(t);
  } catch (e) {
    // Only this controller's gateway writes bodies; an unreadable one would fail the same way everywhere.
    return {
      t: 'failed',
      error: new CorralError('internal', `request ${t.id} has an unreadable body: ${e}`),
    };
  }
  const progress = t.attempt > 1 ? await deps.log.progress(t.id) : undefined;
  if (progress?.ended) return { t: 'finished' };
  const plan = planAttempt(req, progress);
  if (plan.t === 'complete') {
    await deps.log.append(t.id, completedFinished(t.id, plan), req.returnTokenIds);
    return { t: 'finished' };
  }
  if (signal.aborted) return { t: 'stopped' };

  const md = new Metadata();
  md.set('x-request-id', t.id);
  md.set(TRACEPARENT, formatTraceparent(childContext(parseTraceparent(t.trace || undefined))));
  const dispatchedAt = deps.clock.now();
  const call = deps.workers
    .get(target.workerAddress)
    .generate(
      { engineId: target.engineId, request: { ...plan.request, requestId: t.id } },
      md,
      t.deadline === undefined ? {} : { deadline: t.deadline },
    );
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  let firstTokenAt: number | undefined;
  let heldText = '';
  let finished = false;
  /** The worker's stream ended by itself (its status came): nothing to cancel. */
  let streamEnded = false;
  let endGrace: NodeJS.Timeout | undefined;
  const finishAs = deps.finishAs;
  const writer = new LogWriter(
    deps.log,
    t.id,
    req.returnTokenIds,
    undefined,
    deps.live,
    finishAs && (() => ({ ...finishAs, now: deps.clock.now() })),
  );
  // A first attempt writes to an empty log: a client that starts reading now waits for this run's events.
  deps.live?.begin(t.id, t.attempt === 1 ? START : undefined);
  try {
    // Read on to the stream's own end after Finished rather than leaving the loop: leaving destroys the stream
    // (an AbortError) and cancels the call (a CANCELLED status), each an Error whose stack trace is built,
    // which cost more CPU than the rest of the run together. A worker that keeps the stream open after
    // Finished is cancelled after a grace.
    for await (const raw of call as AsyncIterable<GenerateEvent>) {
      if (finished) continue;
      let e = shiftEvent(t.id, raw, plan);
      if (!e?.event) continue;
      if (e.event.$case === 'delta') {
        const d = e.event.value;
        if (d.tokenCount < 1) {
          heldText += d.text;
          continue;
        }
        if (firstTokenAt === undefined) {
          firstTokenAt = deps.clock.now();
          target.onFirstToken?.();
        }
        if (heldText) e = { ...e, event: { $case: 'delta', value: { ...d, text: heldText + d.text } } };
        heldText = '';
      }
      if (e.event?.$case === 'finished') {
        const now = deps.clock.now();
        const timing = {
          queueMs: dispatchedAt - t.submittedAt,
          timeToFirstTokenMs: (firstTokenAt ?? now) - t.submittedAt,
          totalMs: now - t.submittedAt,
        };
        e = { ...e, event: { $case: 'finished', value: { ...e.event.value, timing } } };
      }
      finished = e.event?.$case === 'finished';
      if (writer.push(e) || finished) await writer.drain();
      // 'ended': another owner (this request's lease ran out under us) already wrote the end.
      if (writer.ended) return { t: 'stopped' };
      if (finished) endGrace = setTimeout(() => call.cancel(), END_AFTER_FINISHED_MS);
    }
    streamEnded = true;
    if (finished) return { t: 'finished', settled: writer.finishedInQueue };
    if (signal.aborted) return { t: 'stopped' };
    return { t: 'retry', why: `engine ${target.engineId} ended the stream without Finished` };
  } catch (e) {
    if (finished) return { t: 'finished', settled: writer.finishedInQueue }; // cancelled after the grace
    if (signal.aborted) return { t: 'stopped' };
    const error = isServiceError(e)
      ? fromServiceError(e as ServiceError)
      : e instanceof CorralError
        ? e
        : new CorralError('internal', e instanceof Error ? e.message : String(e));
    if (GROUP_FAILURES.has(error.code)) return { t: 'retry', why: error.message };
    return { t: 'failed', error };
  } finally {
    // What this attempt generated is in the log before anyone continues from it (the caller settles after).
    await writer.drain().catch(() => {});
    deps.live?.end(t.id);
    signal.removeEventListener('abort', onAbort);
    clearTimeout(endGrace);
    if (!streamEnded) call.cancel();
  }
}
