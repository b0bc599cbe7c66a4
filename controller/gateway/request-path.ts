/**
 * The one request path behind both front doors (gRPC Inference and the OpenAI-compatible HTTP API), durable:
 *   identify (admission) -> validate -> check the context -> charge -> submit to the deployment's Redis queue
 *   -> stream the client's events from the request's stream log
 * The dispatcher (controller/dispatch/) runs the request on a group, on this controller or another, and writes
 * the log; so any controller can serve any client, a retry with the same request id attaches to the same
 * request (never runs it twice), and Resume re-attaches after a dropped connection.
 *
 * Failures are CorralErrors: refusals before anything is queued, or the logged terminal error mapped back to
 * the CorralError it was (code and message unchanged), so each transport maps them once at its own boundary.
 *
 * A client that goes away detaches: the request keeps running for detachGraceMs, during which a retry or a
 * Resume on any controller keeps it (they mark the request attached in the queue); after that it is cancelled
 * (queued: removed; running: the engine request is aborted), as vLLM aborts a request whose client
 * disconnected.
 * Cancel by id works from any controller (through the queue), also while the prompt is still being counted.
 * The admission steps before the queue (context, budgets, submit) are enqueue.ts, shared with batches.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../../common/clock.ts';
import { CorralError, NotFoundError, toErrorCode, UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import {
  type GenerateEvent,
  type GenerateRequest,
  type ModelInfo,
  PriorityClass as ProtoPriorityClass,
  type ResumeRequest,
} from '../../proto/gen/corral/v1/inference.ts';
import type { Admission } from '../admission/admission.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView } from '../deployments/replica-view.ts';
import { parseRequest, stripTokenIds } from '../dispatch/attempt-plan.ts';
import type { LiveFeed } from '../queue/live-feed.ts';
import type { PriorityClass } from '../queue/priority-class.ts';
import type { RequestQueue, SubmitOutcome, SubmitRequest } from '../queue/request-queue.ts';
import { type Cursor, cursorAfterTokens, START, type StreamLog } from '../queue/stream-log.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { enqueue } from './enqueue.ts';
import { requestEntries } from './request-entries.ts';
import { resolveDeployment, validateRequest } from './request-validation.ts';
import type { TokenCounter } from './token-counter.ts';

/** A deployment's queue and stream log. */
export interface Lane {
  queue: RequestQueue;
  log: StreamLog;
  /** Events of requests this process runs, for the clients it streams (absent: everything from the log). */
  live?: LiveFeed;
  /** Wakes this process's dispatcher of the deployment (a request was just queued here). */
  wake?: () => void;
  /**
   * Submits through this process's dispatcher, which takes the request in the same script when a group has
   * room (Dispatcher.submit) and wakes itself otherwise. Absent: queue.submit, then wake.
   */
  submit?: (req: SubmitRequest) => Promise<SubmitOutcome>;
}

export interface GatewayDeps {
  deployments: readonly Deployment[];
  registry: WorkerRegistry;
  lanes: ReadonlyMap<string, Lane>;
  admission: Admission;
  tokens: TokenCounter;
  clock: Clock;
  random: () => number;
  log: Logger;
  /** How long a request outlives its client's disconnect before it is cancelled. */
  detachGraceMs: number;
}

export interface RequestContext {
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Absolute deadline (epoch ms): the request's deadline in the queue and on the worker call. */
  deadline?: number;
  /** W3C traceparent the client sent, if any. */
  traceparent?: string;
  /** A request id from the transport (e.g. the X-Request-Id header), used when the request carries none. */
  requestId?: string;
  /** The caller's API key, for admission. */
  apiKey?: string;
}

export interface RequestPath {
  generate(req: GenerateRequest, ctx: RequestContext): AsyncIterable<GenerateEvent>;
  /** The events of a known request after the client's last seen token (Inference.Resume). */
  resume(req: ResumeRequest, ctx: RequestContext): AsyncIterable<GenerateEvent>;
  /**
   * Cancel by request id, wherever it waits or runs; false when the tenant has no such request (another
   * tenant's request is as unknown as a missing one, and is left alone).
   */
  cancel(requestId: string, tenant: string, reason: string): Promise<boolean>;
  listModels(): ModelInfo[];
  /** Ends every client stream served here with UNAVAILABLE (the requests go on; clients may Resume). */
  closeStreams(reason: string): void;
}

/** Why a client stream's log reader stops when the stream is done (one object, made once). */
const STREAM_DONE = new Error('the client stream is done');

/** How often a client stream checks that its request still exists. */
const LOST_CHECK_MS = 5000;

const CLASSES: Partial<Record<ProtoPriorityClass, PriorityClass>> = {
  [ProtoPriorityClass.PRIORITY_CLASS_INTERACTIVE]: 'interactive',
  [ProtoPriorityClass.PRIORITY_CLASS_STANDARD]: 'standard',
  [ProtoPriorityClass.PRIORITY_CLASS_BATCH]: 'batch',
};

export function createRequestPath(deps: GatewayDeps): RequestPath {
  /** Requests still being admitted here (not yet in a queue), so Cancel finds them too. */
  const admitting = new Map<string, Admitting>();
  /** Open client streams, ended by closeStreams(). */
  const streams = new Set<(e: CorralError) => void>();
  /** When a Resume last attached to each request here (a detach timer spares those resumed since). */
  const state = { admitting, streams };
  return {
    generate: (req, ctx) => generate(req, ctx, deps, state),
    resume: (req, ctx) => resume(req, ctx, deps, state),
    cancel: async (requestId, tenant, reason) => {
      const pending = admitting.get(requestId);
      const mine = pending?.tenant === tenant ? pending : undefined;
      mine?.reject(new CorralError('cancelled', reason));
      const outcomes = await Promise.all(
        [...deps.lanes.values()].map((l) => l.queue.cancel(requestId, tenant)),
      );
      const found = mine !== undefined || outcomes.some((o) => o.t === 'removed' || o.t === 'dispatched');
      deps.log.info('cancel', { requestId, found });
      return found;
    },
    listModels: () => {
      const workers = deps.registry.all();
      const now = deps.clock.now();
      return deps.deployments.map((d) => {
        const v = deploymentView(d, workers, now);
        return { id: d.name, maxModelLen: d.maxModelLen, readyReplicas: v.ready, desiredReplicas: v.desired };
      });
    },
    closeStreams: (reason) => {
      for (const end of [...streams]) end(new UnavailableError(reason));
    },
  };
}

/** A request being admitted here: whose it is, and how a Cancel ends it. */
interface Admitting {
  tenant: string;
  reject: (e: CorralError) => void;
}

interface PathState {
  admitting: Map<string, Admitting>;
  streams: Set<(e: CorralError) => void>;
}

async function* generate(
  req: GenerateRequest,
  ctx: RequestContext,
  deps: GatewayDeps,
  state: PathState,
): AsyncGenerator<GenerateEvent> {
  const acceptedAt = deps.clock.now();
  const requestId = req.requestId || ctx.requestId || randomUUID();
  const log = deps.log.child({ requestId });
  const who = deps.admission.identify(ctx.apiKey, CLASSES[req.priorityClass]);
  const d = resolveDeployment(req.model, deps.deployments);
  const prompt = validateRequest(req, d);
  const lane = laneOf(deps, d.name);

  // Until it is queued, a Cancel or the client leaving ends the request here.
  let rejectAdmission: (e: CorralError) => void = () => {};
  const cancelled = new Promise<never>((_, reject) => {
    rejectAdmission = reject;
  });
  cancelled.catch(() => {}); // observed through the race below
  const onClientGone = () => rejectAdmission(new CorralError('cancelled', 'cancelled by the client'));
  ctx.signal.addEventListener('abort', onClientGone, { once: true });
  if (ctx.signal.aborted) onClientGone();
  if (state.admitting.has(requestId)) throw alreadyAdmitting(requestId);
  state.admitting.set(requestId, { tenant: who.tenant, reject: rejectAdmission });
  try {
    const outcome = await enqueue(deps, {
      req,
      requestId,
      deployment: d,
      prompt,
      who,
      queue: lane.queue,
      ...(lane.submit ? { submit: lane.submit } : {}),
      cancelled,
      ...(ctx.deadline === undefined ? {} : { deadline: ctx.deadline }),
      ...(ctx.traceparent ? { trace: ctx.traceparent } : {}),
    });
    if (outcome.t === 'attached') await lane.queue.touchAttached(requestId);
    else if (!lane.submit) lane.wake?.();
    log.info('queued', {
      outcome: outcome.t === 'attached' ? `attached (${outcome.state})` : 'enqueued',
      tenant: who.tenant,
      cls: who.cls,
      admitMs: deps.clock.now() - acceptedAt,
    });
  } catch (e) {
    log.info('refused', {
      code: e instanceof CorralError ? e.code : 'internal',
      message: e instanceof Error ? e.message : String(e),
    });
    throw e;
  } finally {
    state.admitting.delete(requestId);
    ctx.signal.removeEventListener('abort', onClientGone);
  }
  yield* stream(lane, requestId, START, req.returnTokenIds, ctx, deps, state);
}

async function* resume(
  req: ResumeRequest,
  ctx: RequestContext,
  deps: GatewayDeps,
  state: PathState,
): AsyncGenerator<GenerateEvent> {
  const who = deps.admission.identify(ctx.apiKey, undefined);
  const d = resolveDeployment(req.model, deps.deployments);
  const lane = laneOf(deps, d.name);
  const id = req.requestId;
  if (id === '') throw new CorralError('invalid_argument', 'request_id is required');
  const [record, first] = await Promise.all([lane.queue.get(id), lane.log.read(id, START, 1)]);
  // Another tenant's request is as unknown as a missing one: ids must not leak what others run. The queue's
  // record is the proof of ownership, so a log without one (its store lost the record) is not served either.
  if (!record || record.tenant !== who.tenant)
    throw new NotFoundError(
      `request ${id} of model ${d.name} is unknown (never accepted, or ended long ago)`,
      {
        requestId: id,
      },
    );
  const started = first[0];
  const returnTokenIds =
    started?.t === 'event' && started.returnTokenIds !== undefined
      ? started.returnTokenIds
      : record.body !== undefined && parseRequest(record.body).returnTokenIds;
  await lane.queue.touchAttached(id);
  const after = req.afterTokenIndex === 0 ? START : cursorAfterTokens(req.afterTokenIndex);
  yield* stream(lane, id, after, returnTokenIds, ctx, deps, state);
}

/**
 * The request's log entries after `after`, as the client sees them, until the terminal entry. The client
 * leaving starts the detach timer; closeStreams() ends this with UNAVAILABLE.
 */
async function* stream(
  lane: Lane,
  requestId: string,
  after: Cursor,
  returnTokenIds: boolean,
  ctx: RequestContext,
  deps: GatewayDeps,
  state: PathState,
): AsyncGenerator<GenerateEvent> {
  const follow = new AbortController();
  let endedWith: CorralError | undefined;
  const end = (e: CorralError) => {
    endedWith ??= e;
    follow.abort();
  };
  const onClientGone = () => {
    follow.abort();
    // Gone because its deadline passed: the queue expires the request itself (DEADLINE_EXCEEDED, not CANCELLED).
    if (ctx.deadline !== undefined && deps.clock.now() >= ctx.deadline) return;
    detach(lane, requestId, deps);
  };
  ctx.signal.addEventListener('abort', onClientGone, { once: true });
  if (ctx.signal.aborted) onClientGone();
  state.streams.add(end);
  // Never wait forever for a request the store lost (with appendfsync everysec a Redis crash loses up to a
  // second of writes): now and then check that the request or its log still exists.
  const watchdog = setInterval(() => {
    Promise.all([lane.queue.get(requestId), lane.log.read(requestId, START, 1)]).then(
      ([record, first]) => {
        if (!record && first.length === 0) end(lostRequest(requestId));
      },
      () => {}, // Redis unreachable: the follower waits for it to come back
    );
  }, LOST_CHECK_MS);
  watchdog.unref();
  try {
    for await (const entry of requestEntries(lane.log, lane.live, requestId, after, follow.signal)) {
      if (entry.t === 'error')
        throw new CorralError(toErrorCode(entry.code), entry.message, {
          requestId,
        });
      const e = returnTokenIds ? entry.event : stripTokenIds(entry.event);
      yield { ...e, requestId };
    }
    if (endedWith) throw endedWith;
  } finally {
    clearInterval(watchdog);
    state.streams.delete(end);
    ctx.signal.removeEventListener('abort', onClientGone);
    // With a reason: abort() without one builds a DOMException and its stack trace, on every stream's end.
    follow.abort(STREAM_DONE);
  }
}

/** The client left: cancel the request after the grace, unless a client attached again meanwhile. */
function detach(lane: Lane, requestId: string, deps: GatewayDeps): void {
  const goneAt = deps.clock.now();
  const timer = setTimeout(async () => {
    try {
      const attachedAt = (await lane.queue.get(requestId))?.attachedAt;
      if (attachedAt !== undefined && attachedAt >= goneAt) {
        deps.log.info('client gone; request kept: a client attached again', { requestId });
        return;
      }
      const o = await lane.queue.cancel(requestId);
      deps.log.info('client gone; request cancelled', { requestId, outcome: o.t });
    } catch (e) {
      deps.log.warn('cancel after detach failed', { requestId, error: e as Error });
    }
  }, deps.detachGraceMs);
  timer.unref();
}

function laneOf(deps: GatewayDeps, deployment: string): Lane {
  const lane = deps.lanes.get(deployment);
  if (!lane) throw new Error(`no queue for deployment ${deployment}`);
  return lane;
}

function lostRequest(requestId: string): CorralError {
  return new CorralError(
    'unavailable',
    `request ${requestId} is no longer in the queue (its store lost recent writes); submit it again with the same request id`,
    { requestId },
  );
}

function alreadyAdmitting(requestId: string): CorralError {
  return new CorralError('already_exists', `request ${requestId} is already being admitted; retry shortly`, {
    requestId,
  });
}
