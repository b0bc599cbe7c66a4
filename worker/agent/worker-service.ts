/**
 * The Worker gRPC service (controller -> worker): Generate streams one request from a ready engine of this
 * worker; Status reports inventory and engines. The only place that turns worker errors into gRPC statuses.
 */
import type { Metadata, ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import { CorralError, InvalidArgumentError, NotFoundError, UnavailableError } from '../../common/errors.ts';
import { toServiceError } from '../../common/grpc-status.ts';
import type { Logger } from '../../common/log.ts';
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  TRACEPARENT,
} from '../../common/trace-context.ts';
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';
import type {
  EngineStatus,
  Inventory,
  WorkerGenerateRequest,
  WorkerServer,
  WorkerStatus,
  WorkerStatusRequest,
} from '../../proto/gen/corral/v1/worker.ts';
import type { EngineHttpClient } from '../engine/engine-client.ts';
import { type GenerationTarget, runGeneration } from '../engine/generation.ts';
import type { EngineStateTag } from '../engine/state-machine.ts';
import type { InFlight } from './in-flight.ts';

/** What the service needs to know about one engine. */
export interface EngineView {
  engineId: string;
  state: EngineStateTag;
  httpAddress: string;
  servedModel: string;
  headless: boolean;
}

export interface WorkerServiceDeps {
  workerId: string;
  engine(engineId: string): EngineView | undefined;
  engineStatuses(): EngineStatus[];
  inventory(): Inventory;
  inFlight: InFlight;
  http: EngineHttpClient;
  clock: Clock;
  log: Logger;
}

export function workerService(deps: WorkerServiceDeps): WorkerServer {
  return {
    generate: (call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>) => {
      void handleGenerate(call, deps);
    },
    status: (
      _call: ServerUnaryCall<WorkerStatusRequest, WorkerStatus>,
      callback: sendUnaryData<WorkerStatus>,
    ) => {
      callback(null, { inventory: deps.inventory(), engines: deps.engineStatuses() });
    },
  };
}

async function handleGenerate(
  call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>,
  deps: WorkerServiceDeps,
): Promise<void> {
  const { engineId, request } = call.request;
  const requestId = metadataValue(call.metadata, 'x-request-id') ?? request?.requestId ?? '';
  const log = deps.log.child({ requestId, engineId });
  const abort = new AbortController();
  const onCancel = () => abort.abort();
  call.on('cancelled', onCancel);
  // grpc-js cancels the call when its deadline passes; the timer is a second guard that also covers a
  // deadline already past on arrival.
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  const deadlineTimer = Number.isFinite(deadlineMs)
    ? setTimeout(onCancel, Math.max(0, deadlineMs - Date.now()))
    : undefined;
  const release = deps.inFlight.enter();
  try {
    if (!release)
      throw new UnavailableError(`worker ${deps.workerId} is draining; not accepting new requests`);
    if (!request) throw new InvalidArgumentError('request is required');
    const target = resolveTarget(deps, engineId);
    const headers: Record<string, string> = {};
    if (requestId !== '') headers['x-request-id'] = requestId;
    const parent = parseTraceparent(metadataValue(call.metadata, TRACEPARENT));
    if (parent) headers[TRACEPARENT] = formatTraceparent(childContext(parent));
    log.info('generate', { model: target.servedModel, address: target.address });
    await runGeneration({
      target,
      request: { ...request, requestId },
      headers,
      signal: abort.signal,
      http: deps.http,
      clock: deps.clock,
      emit: (event) => write(call, event, abort.signal),
    });
    call.end();
    log.info('generate finished');
  } catch (e) {
    if (abort.signal.aborted || call.cancelled) {
      log.info('generate cancelled by the caller; engine request aborted');
      return;
    }
    const level = e instanceof CorralError && e.code !== 'internal' ? 'warn' : 'error';
    log[level]('generate failed', { error: e instanceof Error ? e : String(e) });
    call.emit('error', toServiceError(e));
  } finally {
    clearTimeout(deadlineTimer);
    call.off('cancelled', onCancel);
    release?.();
  }
}

function resolveTarget(deps: WorkerServiceDeps, engineId: string): GenerationTarget {
  if (engineId === '') throw new InvalidArgumentError('engine_id is required');
  const engine = deps.engine(engineId);
  if (!engine) throw new NotFoundError(`engine ${engineId} not found on worker ${deps.workerId}`);
  if (engine.headless) {
    throw new InvalidArgumentError(
      `engine ${engineId} is a headless rank; send requests to its group leader`,
    );
  }
  if (engine.state !== 'ready' || engine.httpAddress === '') {
    throw new UnavailableError(`engine ${engineId} is not ready (state ${engine.state})`);
  }
  return { engineId, address: engine.httpAddress, servedModel: engine.servedModel };
}

/** Writes with backpressure: waits for 'drain' when grpc-js's buffer is full, unless the call goes away. */
function write(
  call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>,
  event: GenerateEvent,
  signal: AbortSignal,
) {
  if (signal.aborted) return;
  if (call.write(event)) return;
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

function metadataValue(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}
