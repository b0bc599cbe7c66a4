/**
 * The worker as a real process against a fake controller and a fake engine (test/fixtures/worker): register,
 * launch, READY, streamed Generate, error statuses, cancel, engine crash report and restart, stop, drain.
 * Welcome sets a 60 s heartbeat interval, so every state change the test sees arrived through the immediate
 * heartbeat a state change triggers, not through the periodic one.
 */
import { credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateEvent, GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineState, WorkerClient, type WorkerStatus } from '../../../../proto/gen/corral/v1/worker.ts';
import { readEngineLoad } from '../../../../worker/engine/metrics.ts';
import { FAKE_ENGINE, FakeRegistry, WorkerProcess, waitFor } from './worker-harness.ts';

const registry = new FakeRegistry();
let worker: WorkerProcess;
let client: WorkerClient;

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

function request(over: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    model: 'fake',
    requestId: '',
    input: { $case: 'prompt', value: 'Hello' },
    maxTokens: 5,
    sampling: undefined,
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    ...over,
  };
}

function generate(
  engineId: string,
  req: GenerateRequest,
  md = new Metadata(),
): {
  events: GenerateEvent[];
  done: Promise<ServiceError | undefined>;
  call: ReturnType<WorkerClient['generate']>;
} {
  const call = client.generate({ engineId, request: req }, md);
  const events: GenerateEvent[] = [];
  call.on('data', (e: GenerateEvent) => events.push(e));
  const done = new Promise<ServiceError | undefined>((resolve) => {
    call.on('error', (e: ServiceError) => resolve(e));
    call.on('end', () => resolve(undefined));
  });
  return { events, done, call };
}

function workerStatus(): Promise<WorkerStatus> {
  return new Promise((resolve, reject) => client.status({}, (e, s) => (e ? reject(e) : resolve(s))));
}

beforeAll(async () => {
  registry.rejectNext = 1; // the first Register is refused as a duplicate: the worker must retry
  await registry.start();
  worker = new WorkerProcess([
    '--controller',
    `127.0.0.1:${registry.port}`,
    '--gpus',
    '8',
    '--gpu-type',
    'h100-80g',
    '--node-name',
    'n1',
    '--label',
    'zone=z1',
    '--engine-command',
    FAKE_ENGINE,
    '--restart-backoff-ms',
    '200',
    '--drain-timeout-ms',
    '20000',
  ]);
  const address = await worker.listening();
  client = new WorkerClient(address, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await worker?.stop();
  await registry.close();
});

describe('worker process', () => {
  it('retries after ALREADY_EXISTS, then says Hello with its inventory', async () => {
    const hello = await waitFor('hello', () => registry.hellos[0]);
    expect(registry.rejected).toBe(1);
    expect(worker.lines.some((l) => l.includes('already registered on another live stream'))).toBe(true);
    expect(hello.inventory).toMatchObject({
      workerId: 'n1',
      nodeName: 'n1',
      address: await worker.listening(),
      gpus: { count: 8, type: 'h100-80g', memoryBytes: 80 * 1024 ** 3 },
      labels: { zone: 'z1' },
      engineHost: '127.0.0.1',
    });
    registry.send({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 60_000 } } });
  });

  it('launches an engine on LaunchEngine and reports READY', async () => {
    registry.send({
      msg: {
        $case: 'launch',
        value: {
          engineId: 'e1',
          model: 'fake-model',
          args: ['fake-model', '--served-model-name', 'fake'],
          env: { FAKE_TOKEN_MS: '10' },
          gpus: 4,
          headless: false,
        },
      },
    });
    const ready = await waitFor('e1 ready', () => {
      const e = registry.engine('e1');
      return e?.state === EngineState.ENGINE_STATE_READY ? e : undefined;
    });
    expect(ready).toMatchObject({ model: 'fake', restarts: 0 });
    expect(ready.httpAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    // the fake engine reports vLLM 0.9.0 on GET /version
    await waitFor('version warning', () =>
      worker.lines.some((l) => l.includes('older than the oldest supported vLLM')),
    );
    const s = await workerStatus();
    expect(s.inventory?.workerId).toBe('n1');
    expect(s.engines.map((e) => [e.engineId, e.state])).toEqual([['e1', EngineState.ENGINE_STATE_READY]]);
  });

  it('keeps the running engine when the same LaunchEngine arrives again (the worker added CUDA_VISIBLE_DEVICES)', async () => {
    const before = registry.engine('e1');
    registry.send({
      msg: {
        $case: 'launch',
        value: {
          engineId: 'e1',
          model: 'fake-model',
          args: ['fake-model', '--served-model-name', 'fake'],
          env: { FAKE_TOKEN_MS: '10' },
          gpus: 4,
          headless: false,
        },
      },
    });
    await waitFor('the repeated launch to be handled', () =>
      worker.lines.some((l) => l.includes('already running with the same spec: kept')),
    );
    const after = registry.engine('e1');
    expect(after?.state).toBe(EngineState.ENGINE_STATE_READY);
    expect(after?.httpAddress).toBe(before?.httpAddress);
    expect(after?.stateSinceMs).toBe(before?.stateSinceMs);
  });

  it('streams a generation with exact token counts, forwarding request id and trace context', async () => {
    const md = new Metadata();
    md.set('x-request-id', 'req-42');
    md.set('traceparent', TRACEPARENT);
    const { events, done } = generate('e1', request({ maxTokens: 6 }), md);
    expect(await done).toBeUndefined();
    const cases = events.map((e) => e.event?.$case);
    expect(cases[0]).toBe('started');
    expect(cases.at(-1)).toBe('finished');
    const deltas = events.flatMap((e) => (e.event?.$case === 'delta' ? [e.event.value] : []));
    expect(deltas).toHaveLength(6);
    expect(deltas.map((d) => d.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(deltas.every((d) => d.tokenIds.length === 0)).toBe(true); // not asked for: stripped
    const finished = events.at(-1)?.event;
    expect(finished?.$case === 'finished' && finished.value.usage).toEqual({
      promptTokens: 3,
      completionTokens: 6,
      totalTokens: 9,
    });
    expect(deltas.reduce((n, d) => n + d.tokenCount, 0)).toBe(6);
    expect(events.every((e) => e.requestId === 'req-42')).toBe(true);
    // the fake engine echoes the headers it got: same request id, same trace, a new span
    const echoed = deltas[0]?.text ?? '';
    expect(echoed).toContain('[req-42|00-0af7651916cd43dd8448eb211c80319c-');
    expect(echoed).not.toContain('b7ad6b7169203331');
  });

  it('returns token ids when asked, for chat and for prompt token ids', async () => {
    const chat = generate(
      'e1',
      request({
        input: { $case: 'chat', value: { messages: [{ role: 'user', content: 'Hi' }] } },
        returnTokenIds: true,
      }),
    );
    expect(await chat.done).toBeUndefined();
    const started = chat.events[0]?.event;
    expect(started?.$case === 'started' && started.value).toEqual({
      model: 'fake',
      promptTokens: 3,
      promptTokenIds: [1, 2, 3],
    });
    const ids = chat.events.flatMap((e) => (e.event?.$case === 'delta' ? e.event.value.tokenIds : []));
    expect(ids).toEqual([100, 101, 102, 103, 104]);

    const cont = generate(
      'e1',
      request({ input: { $case: 'promptTokenIds', value: { ids: [7, 8, 9, 10] } } }),
    );
    expect(await cont.done).toBeUndefined();
    const fin = cont.events.at(-1)?.event;
    expect(fin?.$case === 'finished' && fin.value.usage?.promptTokens).toBe(4);
  });

  it('maps bad input and engine errors to gRPC statuses with the problem named', async () => {
    const unknown = await generate('nope', request()).done;
    expect(unknown?.code).toBe(status.NOT_FOUND);
    expect(unknown?.details).toBe('engine nope not found on worker n1');

    const empty = await generate('e1', request({ input: { $case: 'prompt', value: '' } })).done;
    expect(empty?.code).toBe(status.INVALID_ARGUMENT);
    expect(empty?.details).toBe('invalid request: request.prompt: must not be empty');

    const tooLong = await generate('e1', request({ maxTokens: 5000 })).done;
    expect(tooLong?.code).toBe(status.INVALID_ARGUMENT);
    expect(tooLong?.details).toContain("'max_tokens' or 'max_completion_tokens' is too large: 5000");
  });

  it('aborts the engine request when the call is cancelled mid-stream', async () => {
    const { events, done, call } = generate('e1', request({ maxTokens: 500 }));
    await waitFor('a few tokens', () => events.length >= 4);
    const address = registry.engine('e1')?.httpAddress ?? '';
    const running = async () =>
      readEngineLoad(await (await fetch(`http://${address}/metrics`)).text()).running;
    expect(await running()).toBe(1);
    call.cancel();
    expect((await done)?.code).toBe(status.CANCELLED);
    const deadline = Date.now() + 10_000;
    while ((await running()) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await running()).toBe(0);
    expect(events.length).toBeLessThan(100);
  });

  it('reports a killed engine at once (not at the 60 s heartbeat) with its signal, and restarts it', async () => {
    const { pid, exited, afterMs } = await registry.killEngine('e1');
    console.log(`engine exit reported ${afterMs} ms after SIGKILL`);
    expect(exited.lastExit).toMatchObject({ code: -1, signal: 'SIGKILL' });
    expect(exited.lastExit?.logTail.join('\n')).toContain('Application startup complete');
    const again = await waitFor('e1 ready again', () => {
      const e = registry.engine('e1');
      return e?.state === EngineState.ENGINE_STATE_READY && e.restarts === 1 ? e : undefined;
    });
    expect(again.detail).not.toContain(`pid ${pid} `);
    expect(await generate('e1', request()).done).toBeUndefined();
  });

  it('stops an engine on StopEngine', async () => {
    registry.send({
      msg: {
        $case: 'launch',
        value: { engineId: 'e2', model: 'other', args: ['other'], env: {}, gpus: 1, headless: false },
      },
    });
    await waitFor('e2 ready', () => registry.engine('e2')?.state === EngineState.ENGINE_STATE_READY);
    registry.send({ msg: { $case: 'stop', value: { engineId: 'e2', graceMs: 1000 } } });
    await waitFor('e2 stopped', () => registry.engine('e2')?.state === EngineState.ENGINE_STATE_STOPPED);
    const unavailable = await generate('e2', request({ model: 'other' })).done;
    expect(unavailable?.code).toBe(status.UNAVAILABLE);
    expect(unavailable?.details).toBe('engine e2 is not ready (state stopped)');
  });

  it('reconnects when the controller drops the stream and reports the engines that kept running', async () => {
    const hellos = registry.hellos.length;
    const brokenAt = Date.now();
    registry.breakStream();
    await waitFor('a new Hello', () => registry.hellos.length > hellos);
    registry.send({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 60_000 } } });
    const hb = await waitFor('a heartbeat on the new stream', () =>
      registry.heartbeats.find((h) => h.at >= brokenAt),
    );
    expect(hb.heartbeat.engines.find((e) => e.engineId === 'e1')?.state).toBe(EngineState.ENGINE_STATE_READY);
    expect(worker.lines.some((l) => l.includes('registry stream broke; reconnecting'))).toBe(true);
  });

  it('fails a launch that needs more GPUs than are free, without spawning it', async () => {
    registry.send({
      msg: {
        $case: 'launch',
        value: { engineId: 'big', model: 'm', args: ['m'], env: {}, gpus: 8, headless: false },
      },
    });
    const failed = await waitFor('big failed', () => {
      const e = registry.engine('big');
      return e?.state === EngineState.ENGINE_STATE_FAILED ? e : undefined;
    });
    // e1 holds 4; e2 held 1 until it stopped
    expect(failed.detail).toBe('engine big needs 8 GPUs; 4 of 8 are free');
    expect(failed.lastExit).toBeUndefined();
  });

  it('aborts the engine request when the call deadline passes', async () => {
    const call = client.generate({ engineId: 'e1', request: request({ maxTokens: 500 }) }, new Metadata(), {
      deadline: Date.now() + 300,
    });
    call.on('data', () => undefined);
    const error = await new Promise<ServiceError>((resolve) => call.on('error', resolve));
    expect(error.code).toBe(status.DEADLINE_EXCEEDED);
    const address = registry.engine('e1')?.httpAddress ?? '';
    const running = async () =>
      readEngineLoad(await (await fetch(`http://${address}/metrics`)).text()).running;
    const deadline = Date.now() + 10_000;
    while ((await running()) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await running()).toBe(0);
  });

  it('reports an engine stream that breaks mid-way as UNAVAILABLE with the token count', async () => {
    registry.send({
      msg: {
        $case: 'launch',
        value: {
          engineId: 'e3',
          model: 'brk',
          args: ['brk'],
          env: { FAKE_BREAK_AFTER: '3' },
          gpus: 1,
          headless: false,
        },
      },
    });
    await waitFor('e3 ready', () => registry.engine('e3')?.state === EngineState.ENGINE_STATE_READY);
    const { events, done } = generate('e3', request({ model: 'brk', maxTokens: 50 }));
    const error = await done;
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(error?.details).toMatch(/^engine e3 stream broke after 3 tokens/);
    expect(events.filter((e) => e.event?.$case === 'delta')).toHaveLength(3);
    registry.send({ msg: { $case: 'stop', value: { engineId: 'e3', graceMs: 1000 } } });
    await waitFor('e3 stopped', () => registry.engine('e3')?.state === EngineState.ENGINE_STATE_STOPPED);
  });

  it('on SIGTERM drains: reports draining, refuses new calls, finishes in-flight ones, stops engines, exits 0', async () => {
    const inflight = generate('e1', request({ maxTokens: 150 }));
    await waitFor('in-flight tokens', () => inflight.events.length >= 2);
    worker.child.kill('SIGTERM');
    await waitFor('draining heartbeat', () => registry.heartbeats.some((h) => h.heartbeat.draining));
    const refused = await generate('e1', request()).done;
    expect(refused?.code).toBe(status.UNAVAILABLE);
    expect(refused?.details).toBe('worker n1 is draining; not accepting new requests');
    expect(await inflight.done).toBeUndefined();
    expect(inflight.events.at(-1)?.event?.$case).toBe('finished');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(registry.engine('e1')?.state).toBe(EngineState.ENGINE_STATE_STOPPED);
  });
});
