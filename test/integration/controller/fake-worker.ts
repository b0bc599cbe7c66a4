/**
 * A fake worker for the controller's integration tests: a real grpc-js Registry client (Hello, heartbeats,
 * directives recorded) and a real Worker gRPC server on 127.0.0.1:0 whose Generate follows a script per call
 * (stream canned events, hang until cancelled, or fail with a status). Engines it is told to launch become
 * READY at once unless `autoReady` is off.
 */
import {
  type ClientDuplexStream,
  credentials,
  type Metadata,
  Server,
  ServerCredentials,
  type ServerWritableStream,
  type ServiceError,
  type status,
} from '@grpc/grpc-js';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  PriorityClass,
} from '../../../proto/gen/corral/v1/inference.ts';
import {
  type ControllerMessage,
  RegistryClient,
  type WorkerMessage,
} from '../../../proto/gen/corral/v1/registry.ts';
import {
  EngineState,
  type EngineStatus,
  type Inventory,
  type WorkerGenerateRequest,
  WorkerService,
} from '../../../proto/gen/corral/v1/worker.ts';
import { until as pollUntil } from '../../helpers/until.ts';

export type Script =
  /**
   * intervalMs: the time before each delta (an engine's service time); absent: all at once. keepOpen: the call
   * stays open after Finished until the controller cancels it (a misbehaving worker).
   */
  | { t: 'stream'; deltas: string[]; intervalMs?: number; keepOpen?: boolean }
  | { t: 'hang' }
  | { t: 'fail'; code: status; details: string };

export interface FakeCall {
  request: WorkerGenerateRequest;
  metadata: Metadata;
  cancelled: boolean;
  /** Not yet ended or cancelled. */
  open: boolean;
  /** Resolves when the controller cancels the call. */
  whenCancelled: Promise<void>;
}

export class FakeWorker {
  readonly calls: FakeCall[] = [];
  readonly directives: ControllerMessage[] = [];
  readonly engines = new Map<string, EngineStatus>();
  script: Script = { t: 'stream', deltas: ['Hello', ', ', 'world'] };
  autoReady = true;
  /** Reported in every heartbeat (a worker being drained before scale-down). */
  draining = false;
  /** Report an engine STOPPED when told to stop it (off: it keeps the state it had, as before). */
  honourStops = false;
  /** Reports this as each engine's running sequences (e.g. its open calls); unset: what setEngine set. */
  runningOf: ((engineId: string) => number) | undefined;
  private readonly client: RegistryClient;
  private stream: ClientDuplexStream<WorkerMessage, ControllerMessage> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private streamEnded: Promise<ServiceError | undefined> = Promise.resolve(undefined);

  private constructor(
    readonly workerId: string,
    private readonly server: Server,
    readonly address: string,
    controller: string,
    private readonly gpus: number,
  ) {
    this.client = new RegistryClient(controller, credentials.createInsecure());
  }

  static async start(controller: string, workerId: string, gpus = 8): Promise<FakeWorker> {
    const server = new Server();
    let worker: FakeWorker | undefined;
    server.addService(WorkerService, {
      generate: (call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>) =>
        worker?.onGenerate(call),
      status: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, { engines: [] }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    worker = new FakeWorker(workerId, server, `127.0.0.1:${port}`, controller, gpus);
    return worker;
  }

  inventory(over: Partial<Inventory> = {}): Inventory {
    return {
      workerId: this.workerId,
      nodeName: this.workerId,
      address: this.address,
      gpus: { count: this.gpus, type: 'h100-80g', memoryBytes: 80 * 2 ** 30 },
      labels: {},
      version: 'fake',
      engineHost: '127.0.0.1',
      ...over,
    };
  }

  /**
   * Opens a Register stream and sends `first` (Hello with this inventory by default). Resolves with the first
   * message from the controller, or rejects with the error that ended the stream.
   */
  /** Registers and waits until the controller's registry holds this worker's engine: most tests' first step. */
  async registerReady(registry: {
    get(id: string): { engines: readonly unknown[] } | undefined;
  }): Promise<void> {
    await this.register();
    await until('engine ready', () => (registry.get(this.workerId)?.engines.length === 1 ? true : undefined));
  }

  register(first?: WorkerMessage): Promise<ControllerMessage> {
    const stream = this.client.register();
    this.stream = stream;
    let resolveFirst: (m: ControllerMessage) => void = () => {};
    let rejectFirst: (e: ServiceError) => void = () => {};
    const firstMessage = new Promise<ControllerMessage>((res, rej) => {
      resolveFirst = res;
      rejectFirst = rej;
    });
    this.streamEnded = new Promise((resolve) => {
      stream.on('error', (e: ServiceError) => {
        rejectFirst(e);
        resolve(e);
      });
      stream.on('end', () => resolve(undefined));
    });
    stream.on('data', (m: ControllerMessage) => {
      resolveFirst(m);
      this.directives.push(m);
      if (m.msg?.$case === 'launch') {
        const l = m.msg.value;
        this.engines.set(l.engineId, {
          engineId: l.engineId,
          state: this.autoReady ? EngineState.ENGINE_STATE_READY : EngineState.ENGINE_STATE_STARTING,
          model: l.model,
          running: 0,
          waiting: 0,
          kvCacheUsage: 0,
          prefixCacheQueries: 0,
          prefixCacheHits: 0,
          restarts: 0,
          lastExit: undefined,
          httpAddress: '127.0.0.1:1',
          detail: this.autoReady ? '' : 'loading weights',
          stateSinceMs: Date.now(),
          maxModelLen: 0,
        });
        this.heartbeat();
      }
      if (m.msg?.$case === 'stop' && this.honourStops) {
        const e = this.engines.get(m.msg.value.engineId);
        if (e)
          this.engines.set(e.engineId, { ...e, state: EngineState.ENGINE_STATE_STOPPED, detail: 'stopped' });
        this.heartbeat();
      }
    });
    stream.write(first ?? { msg: { $case: 'hello', value: { inventory: this.inventory() } } });
    this.heartbeat();
    this.timer = setInterval(() => this.heartbeat(), 100);
    return firstMessage;
  }

  /** Resolves with the error that ended the current stream (undefined when it ended cleanly). */
  ended(): Promise<ServiceError | undefined> {
    return this.streamEnded;
  }

  setEngine(engineId: string, change: Partial<EngineStatus>): void {
    const e = this.engines.get(engineId);
    if (!e) throw new Error(`no engine ${engineId}`);
    this.engines.set(engineId, { ...e, ...change });
    this.heartbeat();
  }

  heartbeat(): void {
    try {
      this.stream?.write({
        msg: {
          $case: 'heartbeat',
          value: { engines: this.reportedEngines(), sentAtMs: Date.now(), draining: this.draining },
        },
      });
    } catch {
      // the stream already ended
    }
  }

  private reportedEngines(): EngineStatus[] {
    const engines = [...this.engines.values()];
    const runningOf = this.runningOf;
    if (!runningOf) return engines;
    return engines.map((e) => ({ ...e, running: runningOf(e.engineId) }));
  }

  /** Stops heartbeating but keeps the stream open (a hung worker). */
  silence(): void {
    clearInterval(this.timer);
  }

  launches(): ControllerMessage['msg'][] {
    return this.directives.map((d) => d.msg).filter((m) => m?.$case === 'launch');
  }

  /** Engine ids the controller told this worker to stop, in order. */
  stops(): string[] {
    return this.directives.flatMap((d) => (d.msg?.$case === 'stop' ? [d.msg.value.engineId] : []));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stream?.cancel();
    this.client.close();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }

  private onGenerate(call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>): void {
    let onCancel: () => void = () => {};
    const whenCancelled = new Promise<void>((resolve) => {
      onCancel = resolve;
    });
    const record: FakeCall = {
      request: call.request,
      metadata: call.metadata,
      cancelled: false,
      open: true,
      whenCancelled,
    };
    call.on('cancelled', () => {
      record.cancelled = true;
      record.open = false;
      onCancel();
    });
    this.calls.push(record);
    const script = this.script;
    const id = call.request.request?.requestId ?? '';
    const started: GenerateEvent = {
      requestId: id,
      event: {
        $case: 'started',
        value: { model: call.request.engineId, promptTokens: 3, promptTokenIds: [] },
      },
    };
    if (script.t === 'fail') {
      record.open = false;
      call.emit('error', { code: script.code, details: script.details });
      return;
    }
    call.write(started);
    if (script.t === 'hang') {
      call.write({
        requestId: id,
        event: { $case: 'delta', value: { text: 'first', index: 0, tokenIds: [], tokenCount: 1 } },
      });
      return;
    }
    if (script.intervalMs !== undefined) {
      this.paced(call, record, script.deltas, script.intervalMs);
      return;
    }
    for (const [index, text] of script.deltas.entries()) {
      call.write({
        requestId: id,
        event: { $case: 'delta', value: { text, index, tokenIds: [], tokenCount: 1 } },
      });
    }
    this.finish(call, record, script.deltas.length, script.keepOpen);
  }

  /** Writes one delta every intervalMs, then Finished; stops when the controller cancels the call. */
  private paced(
    call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>,
    record: FakeCall,
    deltas: string[],
    intervalMs: number,
  ): void {
    const id = call.request.request?.requestId ?? '';
    let index = 0;
    const timer = setInterval(() => {
      if (record.cancelled) {
        clearInterval(timer);
        return;
      }
      const text = deltas[index];
      if (text === undefined) {
        clearInterval(timer);
        this.finish(call, record, deltas.length);
        return;
      }
      call.write({
        requestId: id,
        event: { $case: 'delta', value: { text, index, tokenIds: [], tokenCount: 1 } },
      });
      index += 1;
    }, intervalMs);
  }

  private finish(
    call: ServerWritableStream<WorkerGenerateRequest, GenerateEvent>,
    record: FakeCall,
    completionTokens: number,
    keepOpen = false,
  ): void {
    const id = call.request.request?.requestId ?? '';
    call.write({
      requestId: id,
      event: {
        $case: 'finished',
        value: {
          reason: FinishReason.FINISH_REASON_STOP,
          stopReason: '',
          usage: { promptTokens: 3, completionTokens, totalTokens: 3 + completionTokens },
          timing: { queueMs: 0, timeToFirstTokenMs: 0, totalMs: 0 },
        },
      },
    });
    if (keepOpen) return;
    record.open = false;
    call.end();
  }
}

/** until() with the integration tests' shorter default wait. */
export const until = <T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> => pollUntil(what, probe, timeoutMs);

/** A Generate request as the controller tests send it: a short prompt, 8 tokens, every other field default. */
export function generateRequest(over: Partial<GenerateRequest> & { model: string }): GenerateRequest {
  return {
    requestId: '',
    input: { $case: 'prompt', value: 'What is the capital of France?' },
    maxTokens: 8,
    sampling: undefined,
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    ...over,
  };
}
