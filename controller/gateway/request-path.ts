/**
 * The one request path behind both front doors (gRPC Inference and the OpenAI-compatible HTTP API):
 * validate -> check the context -> pick a replica -> relay Worker.Generate, as an async iterable of events.
 * Failures are CorralErrors (a worker's gRPC status becomes the CorralError it was on the worker, message
 * unchanged), so each transport maps them once at its own boundary.
 *
 * Cancellation: the caller's AbortSignal, a Cancel by request id, a lost worker or a shutdown all end the
 * request the same way: the worker call is cancelled (which aborts the engine request) and the iterable throws
 * the reason. A consumer that stops iterating early cancels the worker call too.
 */
import { randomUUID } from 'node:crypto';
import { type ClientReadableStream, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import { CorralError, UnavailableError } from '../../common/errors.ts';
import { fromServiceError, isServiceError } from '../../common/grpc-status.ts';
import type { Logger } from '../../common/log.ts';
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  TRACEPARENT,
} from '../../common/trace-context.ts';
import type { GenerateEvent, GenerateRequest, ModelInfo } from '../../proto/gen/corral/v1/inference.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView, explainReadiness } from '../deployments/replica-view.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { type GroupView, pick } from '../scheduler/pick.ts';
import { checkContext } from './context-check.ts';
import type { RequestTable } from './request-table.ts';
import { resolveDeployment, validateRequest } from './request-validation.ts';
import type { TokenCounter } from './token-counter.ts';
import type { WorkerClients } from './worker-clients.ts';

export interface GatewayDeps {
  deployments: readonly Deployment[];
  registry: WorkerRegistry;
  requests: RequestTable;
  workers: WorkerClients;
  tokens: TokenCounter;
  clock: Clock;
  random: () => number;
  log: Logger;
}

export interface RequestContext {
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Absolute deadline (epoch ms); passed downstream as the worker call's deadline. */
  deadline?: number;
  /** W3C traceparent the client sent, if any. */
  traceparent?: string;
  /** A request id from the transport (e.g. the X-Request-Id header), used when the request carries none. */
  requestId?: string;
}

export interface RequestPath {
  generate(req: GenerateRequest, ctx: RequestContext): AsyncIterable<GenerateEvent>;
  /** Cancel by request id; false when no such request is running here. */
  cancel(requestId: string, reason: string): boolean;
  listModels(): ModelInfo[];
}

export function createRequestPath(deps: GatewayDeps): RequestPath {
  return {
    generate: (req, ctx) => generate(req, ctx, deps),
    cancel: (requestId, reason) => {
      const found = deps.requests.cancel(requestId, new CorralError('cancelled', reason));
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
  };
}

async function* generate(
  req: GenerateRequest,
  ctx: RequestContext,
  deps: GatewayDeps,
): AsyncGenerator<GenerateEvent> {
  const acceptedAt = deps.clock.now();
  const requestId = req.requestId || ctx.requestId || randomUUID();
  const trace = childContext(parseTraceparent(ctx.traceparent));
  let log = deps.log.child({ requestId, traceId: trace.traceId });

  const d = resolveDeployment(req.model, deps.deployments);
  const prompt = validateRequest(req, d);

  // Whoever ends the request first (client, Cancel, lost worker, shutdown) sets the reason it fails with.
  let abortedWith: CorralError | undefined;
  let upstream: ClientReadableStream<GenerateEvent> | undefined;
  let rejectAborted: (e: CorralError) => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    rejectAborted = reject;
  });
  aborted.catch(() => {}); // observed through the races below
  const abort = (error: CorralError) => {
    abortedWith ??= error;
    upstream?.cancel();
    rejectAborted(abortedWith);
  };
  const onClientGone = () => abort(new CorralError('cancelled', 'cancelled by the client'));
  // Registered before the token count, so a Cancel during it finds the request.
  const ticket = deps.requests.add({ requestId, deployment: d.name, abort });
  ctx.signal.addEventListener('abort', onClientGone, { once: true });
  if (ctx.signal.aborted) onClientGone();
  try {
    // A long prompt's count takes a while; a cancel during it ends the request at once.
    const budget = await Promise.race([checkContext(prompt, req.maxTokens, d, deps.tokens), aborted]);

    const view = deploymentView(d, deps.registry.all(), deps.clock.now());
    const groups: GroupView[] = view.replicas.map((r) => ({
      id: r.engineId,
      deployment: d.name,
      state: r.routable ? 'ready' : r.placed ? 'starting' : 'unavailable',
      outstanding: deps.requests.outstanding(r.engineId),
    }));
    const choice = pick({ groups }, { deployment: d.name }, deps.random);
    if (choice.type !== 'group') {
      throw new UnavailableError(`no ready replica of model ${d.name} (${explainReadiness(view)})`, {
        model: d.name,
      });
    }
    const replica = view.replicas.find((r) => r.engineId === choice.id);
    if (!replica) throw new Error(`scheduler picked unknown group ${choice.id}`);
    ticket.assign(replica.engineId, replica.workerId);
    log = log.child({ engineId: replica.engineId, workerId: replica.workerId });
    log.info('dispatch', { model: d.name, address: replica.workerAddress, why: choice.reason });

    const md = new Metadata();
    md.set('x-request-id', requestId);
    md.set(TRACEPARENT, formatTraceparent(trace));
    const dispatchedAt = deps.clock.now();
    upstream = deps.workers
      .get(replica.workerAddress)
      .generate(
        { engineId: replica.engineId, request: { ...req, requestId, maxTokens: budget.maxTokens } },
        md,
        ctx.deadline === undefined ? {} : { deadline: ctx.deadline },
      );
    let firstTokenAt: number | undefined;
    // Pulling one event at a time is the backpressure: a slow client slows the worker stream instead of
    // buffering its tokens here.
    for await (const event of upstream as AsyncIterable<GenerateEvent>) {
      const e = event.event;
      const now = deps.clock.now();
      if (e?.$case === 'delta') firstTokenAt ??= now;
      if (e?.$case === 'finished') {
        const timing = {
          queueMs: dispatchedAt - acceptedAt,
          timeToFirstTokenMs: (firstTokenAt ?? now) - acceptedAt,
          totalMs: now - acceptedAt,
        };
        yield { requestId, event: { $case: 'finished', value: { ...e.value, timing } } };
      } else {
        yield { ...event, requestId };
      }
    }
    log.info('generate finished', { totalMs: deps.clock.now() - acceptedAt });
  } catch (e) {
    const error = abortedWith ?? (isServiceError(e) ? fromServiceError(e as ServiceError) : e);
    log.info('generate refused or failed', {
      code: error instanceof CorralError ? error.code : 'internal',
      message: error instanceof Error ? error.message : String(error),
      totalMs: deps.clock.now() - acceptedAt,
    });
    throw error;
  } finally {
    ctx.signal.removeEventListener('abort', onClientGone);
    upstream?.cancel(); // a no-op once the call ended; stops the worker when the consumer stopped early
    ticket.release();
  }
}
