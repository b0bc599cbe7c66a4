/**
 * The Inference gateway over real gRPC on 127.0.0.1 with fake workers and a real Redis (the durable path:
 * queue, dispatcher, stream log): relay and timing, metadata downstream, least-outstanding routing, every bad
 * input's status and message, no ready replica, a lost worker, cancel (by the client, by Cancel, by deadline),
 * worker errors passed through, ListModels.
 */
import { type ClientReadableStream, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { inferenceClient, unary } from '../../../../cli/clients.ts';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../../controller/controller.ts';
import type {
  GenerateEvent,
  GenerateRequest,
  InferenceClient,
} from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { FakeWorker, generateRequest, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';
const options = {
  listen: '127.0.0.1:0',
  queue: { detachGraceMs: 100, noGroupGraceMs: 300 },
  heartbeatIntervalMs: 200,
  workerTimeoutMs: 600,
  deployments: [
    {
      name: MODEL,
      model: 'meta-llama/Llama-3.1-8B-Instruct',
      replicas: 2,
      maxModelLen: 64,
      defaultMaxTokens: 16,
      maxPromptBytes: 1000,
    },
    {
      name: 'llama-3.1-70b-instruct',
      model: 'meta-llama/Llama-3.1-70B-Instruct',
      replicas: 1,
      gpusPerReplica: 16,
    },
  ],
};
let config: ReturnType<typeof compileControllerConfig>;
const redis = useRedis();

let controller: RunningController;
let client: InferenceClient;
let n1: FakeWorker;
let n2: FakeWorker;

beforeAll(async () => {
  config = compileControllerConfig({ ...options, redis: redis.url });
  // random 0: ties go to the first ready engine in worker-id order, so routing is deterministic.
  controller = await startController(config, { log: silentLogger, random: () => 0 });
  client = inferenceClient(controller.address);
  n1 = await FakeWorker.start(controller.address, 'n1');
  n2 = await FakeWorker.start(controller.address, 'n2');
  await n1.register();
  await n2.register();
  await until('both engines ready', () =>
    controller.registry.all().every((w) => w.engines.length === 1) ? true : undefined,
  );
});

afterAll(async () => {
  client?.close();
  await n1?.stop();
  await n2?.stop();
  await controller?.stop(1000);
});

beforeEach(() => {
  n1.calls.length = 0;
  n2.calls.length = 0;
  n1.script = { t: 'stream', deltas: ['Hello', ', ', 'world'] };
  n2.script = { t: 'stream', deltas: ['Hello', ', ', 'world'] };
});

const request = (over: Partial<GenerateRequest> = {}) => generateRequest({ model: MODEL, ...over });

function generate(
  req: GenerateRequest,
  metadata = new Metadata(),
  deadlineMs = 10_000,
): ClientReadableStream<GenerateEvent> {
  return client.generate(req, metadata, { deadline: Date.now() + deadlineMs });
}

async function failure(req: GenerateRequest): Promise<{ code: number; details: string }> {
  try {
    await collect(generate(req));
  } catch (e) {
    const se = e as ServiceError;
    return { code: se.code, details: se.details };
  }
  throw new Error('expected the call to fail');
}

describe('Inference.Generate relay', () => {
  it('streams the worker events with a generated request id and the controller timing', async () => {
    const r = await collect(generate(request()));
    expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.events.every((e) => e.requestId === r.requestId)).toBe(true);
    expect(r.events[0]?.event?.$case).toBe('started');
    expect(r.text).toBe('Hello, world');
    expect(r.usage).toEqual({ promptTokens: 3, completionTokens: 3 });
    const finished = r.events.at(-1)?.event;
    expect(finished?.$case).toBe('finished');
    if (finished?.$case !== 'finished') return;
    const t = finished.value.timing;
    expect(t).toBeDefined();
    expect(t!.queueMs).toBeGreaterThanOrEqual(0);
    expect(t!.timeToFirstTokenMs).toBeGreaterThanOrEqual(t!.queueMs);
    expect(t!.totalMs).toBeGreaterThanOrEqual(t!.timeToFirstTokenMs);
    // The worker got the request id, the resolved max_tokens and the engine id.
    const call = [...n1.calls, ...n2.calls][0];
    expect(call?.request.request).toMatchObject({ requestId: r.requestId, maxTokens: 8 });
    expect(call?.metadata.get('x-request-id')).toEqual([r.requestId]);
    expect(String(call?.metadata.get('traceparent')[0])).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('keeps the client request id and trace id, fills the default max_tokens', async () => {
    const md = new Metadata();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    md.set('traceparent', `00-${traceId}-00f067aa0ba902b7-01`);
    const r = await collect(generate(request({ requestId: 'req-42', maxTokens: undefined }), md));
    expect(r.requestId).toBe('req-42');
    const call = [...n1.calls, ...n2.calls][0];
    expect(call?.request.request?.maxTokens).toBe(16);
    const tp = String(call?.metadata.get('traceparent')[0]);
    expect(tp.split('-')[1]).toBe(traceId);
    expect(tp.split('-')[2]).not.toBe('00f067aa0ba902b7');
  });

  it('routes to the ready engine with the fewest outstanding requests', async () => {
    n1.script = { t: 'hang' };
    n2.script = { t: 'hang' };
    const a = generate(request({ requestId: 'a' }));
    const firstOfA = new Promise((resolve) => a.once('data', resolve));
    a.on('error', () => {});
    await firstOfA;
    expect(n1.calls.map((c) => c.request.engineId)).toEqual([`${MODEL}-n1`]); // tie -> first
    const b = generate(request({ requestId: 'b' }));
    b.on('error', () => {});
    await new Promise((resolve) => b.once('data', resolve));
    expect(n2.calls.map((c) => c.request.request?.requestId)).toEqual(['b']); // n1 has one outstanding
    const c = generate(request({ requestId: 'c' }));
    c.on('error', () => {});
    await new Promise((resolve) => c.once('data', resolve));
    expect(n1.calls.map((x) => x.request.request?.requestId)).toEqual(['a', 'c']); // 1-1 tie -> first again
    a.cancel();
    b.cancel();
    c.cancel();
    await until('all cancelled', () => (controller.requests.size === 0 ? true : undefined));
  });

  it('a retry with a running request id attaches to it: one worker call, the same stream', async () => {
    n1.script = { t: 'hang' };
    n2.script = { t: 'hang' };
    const first = generate(request({ requestId: 'dup' }));
    const firstEnded = new Promise<ServiceError>((resolve) => first.on('error', resolve));
    await new Promise((resolve) => first.once('data', resolve));
    const retry = generate(request({ requestId: 'dup' }));
    const retryEnded = new Promise<ServiceError>((resolve) => retry.on('error', resolve));
    const retryFirst = await new Promise<GenerateEvent>((resolve) => retry.once('data', resolve));
    expect(retryFirst.event?.$case).toBe('started');
    expect(n1.calls.length + n2.calls.length).toBe(1);
    expect((await unary(client.cancel.bind(client), { requestId: 'dup' })).found).toBe(true);
    expect((await firstEnded).code).toBe(status.CANCELLED);
    expect((await retryEnded).code).toBe(status.CANCELLED);
    await until('released', () => (controller.requests.size === 0 ? true : undefined));
  });

  it('refuses a request id reused for a different request with ALREADY_EXISTS', async () => {
    await collect(generate(request({ requestId: 'reused' })));
    expect(await failure(request({ requestId: 'reused', maxTokens: 9 }))).toEqual({
      code: status.ALREADY_EXISTS,
      details: 'request id reused is already used by a different request',
    });
    expect(n1.calls.length + n2.calls.length).toBe(1);
  });

  it('passes a worker error through with its status and message', async () => {
    n1.script = { t: 'fail', code: status.RESOURCE_EXHAUSTED, details: 'engine waiting queue is full' };
    n2.script = n1.script;
    expect(await failure(request())).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: 'engine waiting queue is full',
    });
  });
});

describe('cancellation and deadlines', () => {
  it('a client cancel cancels the worker call', async () => {
    n1.script = { t: 'hang' };
    n2.script = { t: 'hang' };
    const call = generate(request({ requestId: 'to-cancel' }));
    const ended = new Promise<number>((resolve) => call.on('error', (e: ServiceError) => resolve(e.code)));
    await new Promise((resolve) => call.once('data', resolve));
    call.cancel();
    expect(await ended).toBe(status.CANCELLED);
    const upstream = [...n1.calls, ...n2.calls].find((c) => c.request.request?.requestId === 'to-cancel');
    await upstream?.whenCancelled;
    expect(upstream?.cancelled).toBe(true);
  });

  it('Cancel by request id ends the stream with CANCELLED and cancels the worker call', async () => {
    n1.script = { t: 'hang' };
    n2.script = { t: 'hang' };
    const call = generate(request({ requestId: 'by-id' }));
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    await new Promise((resolve) => call.once('data', resolve));
    const res = await unary(client.cancel.bind(client), { requestId: 'by-id' });
    expect(res.found).toBe(true);
    const e = await ended;
    expect(e.code).toBe(status.CANCELLED);
    expect(e.details).toBe('request by-id cancelled; engine request aborted');
    const upstream = [...n1.calls, ...n2.calls].find((c) => c.request.request?.requestId === 'by-id');
    await upstream?.whenCancelled;
    expect(upstream?.cancelled).toBe(true);
    expect((await unary(client.cancel.bind(client), { requestId: 'by-id' })).found).toBe(false);
  });

  it('Cancel of an unknown id answers found=false; an empty id is INVALID_ARGUMENT', async () => {
    expect((await unary(client.cancel.bind(client), { requestId: 'nope' })).found).toBe(false);
    const e = await unary(client.cancel.bind(client), { requestId: '' }).catch((x: ServiceError) => x);
    expect((e as ServiceError).code).toBe(status.INVALID_ARGUMENT);
  });

  it("the client's deadline ends the call with DEADLINE_EXCEEDED and cancels the worker call", async () => {
    n1.script = { t: 'hang' };
    n2.script = { t: 'hang' };
    const call = generate(request({ requestId: 'deadline' }), new Metadata(), 500);
    const e = await new Promise<ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    expect(e.code).toBe(status.DEADLINE_EXCEEDED);
    const upstream = await until('the worker call', () =>
      [...n1.calls, ...n2.calls].find((c) => c.request.request?.requestId === 'deadline'),
    );
    await upstream.whenCancelled;
    expect(upstream.cancelled).toBe(true);
    await until('request released', () => (controller.requests.size === 0 ? true : undefined));
  });
});

describe('before dispatch', () => {
  it('Cancel finds a request whose prompt is still being counted and ends it with CANCELLED', async () => {
    let releaseCount: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseCount = resolve;
    });
    let counting = false;
    const gated = await startController(config, {
      log: silentLogger,
      tokens: {
        count: async (text) => {
          counting = true;
          await gate;
          return text.split(' ').length;
        },
        close: async () => {},
      },
    });
    const c = inferenceClient(gated.address);
    try {
      const call = c.generate(
        request({ requestId: 'counting', input: { $case: 'prompt', value: 'hello '.repeat(20).trim() } }),
        new Metadata(),
      );
      const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
      await until('the token count to start', () => (counting ? true : undefined));
      expect((await unary(c.cancel.bind(c), { requestId: 'counting' })).found).toBe(true);
      const e = await ended;
      expect(e.code).toBe(status.CANCELLED);
      expect(e.details).toBe('request counting cancelled by Cancel');
      releaseCount();
      await until('released', () => (gated.requests.size === 0 ? true : undefined));
    } finally {
      releaseCount();
      c.close();
      await gated.stop(1000);
    }
  });
});

describe('bad input', () => {
  it.each([
    [
      'unknown model',
      request({ model: 'gpt-4' }),
      status.NOT_FOUND,
      `model \`gpt-4\` is not served here; served models: ${MODEL}, llama-3.1-70b-instruct`,
    ],
    [
      'no model',
      request({ model: '' }),
      status.INVALID_ARGUMENT,
      `model is required; served models: ${MODEL}, llama-3.1-70b-instruct`,
    ],
    [
      'no input',
      request({ input: undefined }),
      status.INVALID_ARGUMENT,
      'no input: set one of prompt, chat or prompt_token_ids',
    ],
    [
      'empty prompt',
      request({ input: { $case: 'prompt', value: '' } }),
      status.INVALID_ARGUMENT,
      'prompt must not be empty',
    ],
    [
      'empty chat',
      request({ input: { $case: 'chat', value: { messages: [] } } }),
      status.INVALID_ARGUMENT,
      'invalid chat messages: chat.messages: must contain at least one message',
    ],
    [
      'malformed chat',
      request({
        input: {
          $case: 'chat',
          value: {
            messages: [
              { role: 'user', content: 'hi' },
              { role: 'bot', content: 'x' },
            ],
          },
        },
      }),
      status.INVALID_ARGUMENT,
      'invalid chat messages: chat.messages[1].role: must be one of system, user, assistant, got "bot"',
    ],
    [
      'chat ending with the assistant',
      request({
        input: {
          $case: 'chat',
          value: {
            messages: [
              { role: 'user', content: 'hi' },
              { role: 'assistant', content: 'x' },
            ],
          },
        },
      }),
      status.INVALID_ARGUMENT,
      'invalid chat messages: chat.messages[1]: the last message must be from the user, got assistant',
    ],
    [
      'max_tokens 0',
      request({ maxTokens: 0 }),
      status.INVALID_ARGUMENT,
      'max_tokens must be greater than 0, got 0',
    ],
    [
      'max_tokens negative',
      request({ maxTokens: -1 }),
      status.INVALID_ARGUMENT,
      'max_tokens must be greater than 0, got -1',
    ],
    [
      'prompt over the size limit',
      request({ input: { $case: 'prompt', value: 'x'.repeat(1001) } }),
      status.RESOURCE_EXHAUSTED,
      `prompt is 1001 bytes; model ${MODEL} accepts at most 1000 bytes (maxPromptBytes)`,
    ],
    [
      'prompt beyond the context',
      request({ input: { $case: 'prompt', value: 'hello '.repeat(70).trim() } }),
      status.INVALID_ARGUMENT,
      "This model's maximum context length is 64 tokens. However, your request has 71 input tokens. Please reduce the length of the input messages.",
    ],
    [
      'max_tokens beyond the context',
      request({ input: { $case: 'prompt', value: 'hello '.repeat(30).trim() }, maxTokens: 40 }),
      status.INVALID_ARGUMENT,
      "'max_tokens' or 'max_completion_tokens' is too large: 40. This model's maximum context length is 64 tokens and your request has 31 input tokens (40 > 64 - 31).",
    ],
    [
      'no ready replica (never placed)',
      request({ model: 'llama-3.1-70b-instruct' }),
      status.UNAVAILABLE,
      'no ready replica of model llama-3.1-70b-instruct (0 of 1 ready: 1 not placed (needs a connected worker with 16 free GPUs where it has not failed))',
    ],
  ])('%s', async (_name, req, code, details) => {
    expect(await failure(req)).toEqual({ code, details });
    expect(n1.calls.length + n2.calls.length).toBe(0);
  });
});

describe('ListModels', () => {
  it('lists deployments with ready and desired replicas', async () => {
    const res = await unary(client.listModels.bind(client), {});
    expect(res.models).toEqual([
      { id: MODEL, maxModelLen: 64, readyReplicas: 2, desiredReplicas: 2 },
      { id: 'llama-3.1-70b-instruct', maxModelLen: 8192, readyReplicas: 0, desiredReplicas: 1 },
    ]);
  });
});

// Last: these change the workers for good.
describe('replicas that are not ready', () => {
  it('restarting and failed engines are not routed to: requests wait in the queue for a ready one', async () => {
    n2.setEngine(`${MODEL}-n2`, {
      state: EngineState.ENGINE_STATE_FAILED,
      detail: 'never became healthy within 600000 ms',
    });
    n1.setEngine(`${MODEL}-n1`, { state: EngineState.ENGINE_STATE_EXITED, detail: 'restarting in 2 s' });
    await until('no ready engine', () =>
      controller.registry.all().every((w) => w.engines[0]?.state !== EngineState.ENGINE_STATE_READY)
        ? true
        : undefined,
    );
    const waiting = collect(generate(request({ requestId: 'waits-for-n1' })));
    await until('queued', async () =>
      (await controller.lanes.lanes.get(MODEL)?.queue.get('waits-for-n1'))?.state === 'queued'
        ? true
        : undefined,
    );
    expect(n1.calls).toHaveLength(0);
    n1.setEngine(`${MODEL}-n1`, { state: EngineState.ENGINE_STATE_READY, detail: '' });
    expect((await waiting).text).toBe('Hello, world');
    expect(n1.calls).toHaveLength(1);
    expect(n2.calls).toHaveLength(0);
  });

  it('a worker that goes silent: its request is handed back, and with no group left fails UNAVAILABLE', async () => {
    n1.script = { t: 'hang' };
    const call = generate(request({ requestId: 'on-silent-worker' }));
    const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
    await new Promise((resolve) => call.once('data', resolve));
    n1.silence();
    const e = await ended;
    expect(e.code).toBe(status.UNAVAILABLE);
    expect(e.details).toMatch(
      new RegExp(
        `^no ready replica of model ${MODEL} \\(0 of 2 ready: worker n1 lost [\\d.]+ s ago: no heartbeat`,
      ),
    );
    const refused = await failure(request());
    expect(refused.code).toBe(status.UNAVAILABLE);
    expect(refused.details).toMatch(
      new RegExp(
        `^no ready replica of model ${MODEL} \\(0 of 2 ready: worker n1 lost [\\d.]+ s ago: no heartbeat`,
      ),
    );
  });
});
