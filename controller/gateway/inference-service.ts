/**
 * The Inference service: validate -> check the context -> pick a replica -> relay Worker.Generate. The only
 * place that turns gateway errors into gRPC statuses; errors from the worker pass through with their status and
 * message. The client's deadline goes downstream as the worker call's deadline, and a client that cancels (or a
 * Cancel by request id) cancels the worker call, which aborts the engine request.
 */
import { randomUUID } from 'node:crypto';
import {
  type ClientReadableStream,
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import { CorralError, InvalidArgumentError, UnavailableError } from '../../common/errors.ts';
import { isServiceError, toServiceError } from '../../common/grpc-status.ts';
import type { Logger } from '../../common/log.ts';
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  TRACEPARENT,
} from '../../common/trace-context.ts';
import type {
  CancelRequest,
  CancelResponse,
  GenerateEvent,
  GenerateRequest,
  InferenceServer,
  ListModelsRequest,
  ListModelsResponse,
} from '../../proto/gen/corral/v1/inference.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView, explainReadiness } from '../deployments/replica-view.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { type GroupView, pick } from '../scheduler/pick.ts';
import { checkContext } from './context-check.ts';
import type { RequestTable, Ticket } from './request-table.ts';
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

export function inferenceService(deps: GatewayDeps): InferenceServer {
  return {
    generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
      void handleGenerate(call, deps);
    },
    cancel: (
      call: ServerUnaryCall<CancelRequest, CancelResponse>,
      callback: sendUnaryData<CancelResponse>,
    ) => {
      const id = call.request.requestId;
      if (id === '') {
        callback(toServiceError(new InvalidArgumentError('request_id is required')) as ServiceError, null);
        return;
      }
      const found = deps.requests.cancel(
        id,
        new CorralError('cancelled', `request ${id} cancelled by Cancel`),
      );
      deps.log.info('cancel', { requestId: id, found });
      callback(null, { found });
    },
    listModels: (
      _call: ServerUnaryCall<ListModelsRequest, ListModelsResponse>,
      callback: sendUnaryData<ListModelsResponse>,
    ) => {
      const now = deps.clock.now();
      const workers = deps.registry.all();
      callback(null, {
        models: deps.deployments.map((d) => {
          const v = deploymentView(d, workers, now);
          return {
            id: d.name,
            maxModelLen: d.maxModelLen,
            readyReplicas: v.ready,
            desiredReplicas: v.desired,
          };
        }),
      });
    },
  };
}

function metadataValue(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

async function handleGenerate(
  call: ServerWritableStream<GenerateRequest, GenerateEvent>,
  deps: GatewayDeps,
): Promise<void> {
  const acceptedAt = deps.clock.now();
  const req = call.request;
  const requestId = req.requestId || metadataValue(call.metadata, 'x-request-id') || randomUUID();
  const trace = childContext(parseTraceparent(metadataValue(call.metadata, TRACEPARENT)));
  const log = deps.log.child({ requestId, traceId: trace.traceId });
  let finished = false;
  const fail = (e: unknown) => {
    if (finished) return;
    finished = true;
    const se = toServiceError(e);
    log.info('generate refused or failed', { code: status[se.code ?? status.UNKNOWN], details: se.details });
    call.emit('error', se);
  };
  // Until dispatch, Cancel (or a shutdown) ends the client's stream directly; relay() replaces this handler.
  let ticket: Ticket | undefined;
  let onAbort = (error: CorralError) => {
    ticket?.release();
    fail(error);
  };
  try {
    const d = resolveDeployment(req.model, deps.deployments);
    const prompt = validateRequest(req, d);
    ticket = deps.requests.add({ requestId, deployment: d.name, abort: (error) => onAbort(error) });
    const budget = await checkContext(prompt, req.maxTokens, d, deps.tokens);
    if (finished || call.cancelled) {
      log.info('request ended before dispatch', { clientCancelled: call.cancelled });
      ticket.release();
      return;
    }
    const view = deploymentView(d, deps.registry.all(), deps.clock.now());
    const groups: GroupView[] = view.replicas.map((r) => ({
      id: r.engineId,
      deployment: d.name,
      state: r.routable ? 'ready' : r.placed ? 'starting' : 'unavailable',
      outstanding: deps.requests.outstanding(r.engineId),
    }));
    const choice = pick({ groups }, { deployment: d.name }, deps.random);
    if (choice.type !== 'group')
      throw new UnavailableError(`no ready replica of model ${d.name} (${explainReadiness(view)})`, {
        model: d.name,
      });
    const replica = view.replicas.find((r) => r.engineId === choice.id);
    if (!replica) throw new Error(`scheduler picked unknown group ${choice.id}`);
    ticket.assign(replica.engineId, replica.workerId);
    relay(call, deps, {
      ticket,
      setAbort: (handler) => {
        onAbort = handler;
      },
      requestId,
      log: log.child({ engineId: replica.engineId, workerId: replica.workerId }),
      traceparent: formatTraceparent(trace),
      deployment: d,
      engineId: replica.engineId,
      workerId: replica.workerId,
      workerAddress: replica.workerAddress,
      request: { ...req, requestId, maxTokens: budget.maxTokens },
      acceptedAt,
      reason: choice.reason,
      onDone: () => {
        finished = true;
      },
    });
  } catch (e) {
    ticket?.release();
    fail(e);
  }
}

interface Dispatch {
  ticket: Ticket;
  setAbort(handler: (error: CorralError) => void): void;
  requestId: string;
  log: Logger;
  traceparent: string;
  deployment: Deployment;
  engineId: string;
  workerId: string;
  workerAddress: string;
  request: GenerateRequest;
  acceptedAt: number;
  reason: string;
  onDone: () => void;
}

function relay(
  call: ServerWritableStream<GenerateRequest, GenerateEvent>,
  deps: GatewayDeps,
  x: Dispatch,
): void {
  const md = new Metadata();
  md.set('x-request-id', x.requestId);
  md.set(TRACEPARENT, x.traceparent);
  const dispatchedAt = deps.clock.now();
  const deadline = call.getDeadline();
  let upstream: ClientReadableStream<GenerateEvent> | undefined;
  let abortedWith: CorralError | undefined;
  let done = false;
  let firstTokenAt: number | undefined;

  x.setAbort((error) => {
    if (done) return;
    abortedWith = error;
    upstream?.cancel();
  });
  const finish = (outcome: 'ok' | Partial<ServiceError>) => {
    if (done) return;
    done = true;
    x.ticket.release();
    x.onDone();
    call.off('cancelled', onClientCancel);
    const totalMs = deps.clock.now() - x.acceptedAt;
    if (outcome === 'ok') {
      x.log.info('generate finished', { totalMs });
      call.end();
      return;
    }
    x.log.info('generate ended with an error', {
      code: status[outcome.code ?? status.UNKNOWN],
      details: outcome.details,
      totalMs,
    });
    if (!call.cancelled) call.emit('error', outcome);
  };
  const onClientCancel = () => {
    x.log.info('client cancelled; cancelling the worker call');
    abortedWith = new CorralError('cancelled', 'cancelled by the client');
    upstream?.cancel();
  };
  call.on('cancelled', onClientCancel);

  x.log.info('dispatch', { model: x.deployment.name, address: x.workerAddress, why: x.reason });
  upstream = deps.workers
    .get(x.workerAddress)
    .generate({ engineId: x.engineId, request: x.request }, md, { deadline });
  upstream.on('data', (event: GenerateEvent) => {
    const e = event.event;
    const now = deps.clock.now();
    if (e?.$case === 'delta' && firstTokenAt === undefined) firstTokenAt = now;
    let out: GenerateEvent = { ...event, requestId: x.requestId };
    if (e?.$case === 'finished') {
      out = {
        requestId: x.requestId,
        event: {
          $case: 'finished',
          value: {
            ...e.value,
            timing: {
              queueMs: dispatchedAt - x.acceptedAt,
              timeToFirstTokenMs: (firstTokenAt ?? now) - x.acceptedAt,
              totalMs: now - x.acceptedAt,
            },
          },
        },
      };
    }
    if (!call.write(out)) {
      // Backpressure: a slow client slows the worker stream instead of buffering its tokens here.
      upstream?.pause();
      call.once('drain', () => upstream?.resume());
    }
  });
  upstream.on('error', (e: ServiceError) => {
    if (abortedWith) finish(toServiceError(abortedWith));
    else if (isServiceError(e)) finish({ code: e.code, details: e.details, metadata: new Metadata() });
    else finish(toServiceError(e));
  });
  upstream.on('end', () => finish('ok'));
}
