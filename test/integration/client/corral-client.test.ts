/** The TypeScript client against a small Inference server in the test: deadline, cancel, safe retries. */
import { Server, ServerCredentials, type ServerWritableStream, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CorralClient } from '../../../client/corral-client.ts';
import { CorralClientError } from '../../../client/errors.ts';
import {
  FinishReason,
  type GenerateEvent,
  type GenerateRequest,
  InferenceService,
  type ResumeRequest,
} from '../../../proto/gen/corral/v1/inference.ts';

let server: Server;
let address: string;
let failuresBeforeSuccess = 0;
let attempts: string[] = [];
let cancelledIds: string[] = [];

/** Streams `max_tokens` one-token deltas, one every 20 ms. */
function generate(call: ServerWritableStream<GenerateRequest, GenerateEvent>): void {
  const req = call.request;
  attempts.push(req.requestId);
  if (failuresBeforeSuccess > 0) {
    failuresBeforeSuccess -= 1;
    call.emit('error', { code: status.UNAVAILABLE, details: 'no ready replica' });
    return;
  }
  const n = req.maxTokens ?? 4;
  call.write({
    requestId: req.requestId,
    event: { $case: 'started', value: { model: req.model, promptTokens: 3, promptTokenIds: [] } },
  });
  let i = 0;
  const timer = setInterval(() => {
    if (i < n) {
      call.write({
        requestId: req.requestId,
        event: { $case: 'delta', value: { text: `t${i} `, index: i, tokenIds: [], tokenCount: 1 } },
      });
      i += 1;
      return;
    }
    clearInterval(timer);
    call.write({
      requestId: req.requestId,
      event: {
        $case: 'finished',
        value: {
          reason: FinishReason.FINISH_REASON_LENGTH,
          stopReason: '',
          usage: { promptTokens: 3, completionTokens: n, totalTokens: 3 + n },
          timing: { queueMs: 1, timeToFirstTokenMs: 2, totalMs: 3 },
        },
      },
    });
    call.end();
  }, 20);
  call.on('cancelled', () => {
    clearInterval(timer);
    cancelledIds.push(req.requestId);
  });
}

/** Resume of `logged`: its 5 one-token deltas after the client's index, then Finished; others NOT_FOUND. */
function resume(call: ServerWritableStream<ResumeRequest, GenerateEvent>): void {
  const { requestId, afterTokenIndex } = call.request;
  resumes.push(call.request);
  if (requestId !== 'logged') {
    call.emit('error', { code: status.NOT_FOUND, details: `request ${requestId} is unknown` });
    return;
  }
  if (afterTokenIndex === 0)
    call.write({
      requestId,
      event: { $case: 'started', value: { model: 'm', promptTokens: 3, promptTokenIds: [] } },
    });
  for (let i = afterTokenIndex; i < 5; i++)
    call.write({
      requestId,
      event: { $case: 'delta', value: { text: `t${i} `, index: i, tokenIds: [], tokenCount: 1 } },
    });
  call.write({
    requestId,
    event: {
      $case: 'finished',
      value: {
        reason: FinishReason.FINISH_REASON_LENGTH,
        stopReason: '',
        usage: { promptTokens: 3, completionTokens: 5, totalTokens: 8 },
        timing: undefined,
      },
    },
  });
  call.end();
}
let resumes: ResumeRequest[] = [];

beforeAll(async () => {
  server = new Server();
  server.addService(InferenceService, {
    generate,
    resume,
    cancel: (_call: unknown, cb: (e: null, r: { found: boolean }) => void) => cb(null, { found: false }),
    listModels: (_call: unknown, cb: (e: null, r: unknown) => void) =>
      cb(null, { models: [{ id: 'm', maxModelLen: 8192, readyReplicas: 1, desiredReplicas: 1 }] }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(() => {
  server.forceShutdown();
});

beforeEach(() => {
  failuresBeforeSuccess = 0;
  attempts = [];
  cancelledIds = [];
  resumes = [];
});

describe('CorralClient', () => {
  it('streams events as an async iterator and completes', async () => {
    const client = new CorralClient({ address });
    const events: string[] = [];
    for await (const e of client.generate({ model: 'm', prompt: 'hi', maxTokens: 3 }, { requestId: 'r1' })) {
      events.push(e.type);
    }
    expect(events).toEqual(['started', 'delta', 'delta', 'delta', 'finished']);
    const done = await client.complete({ model: 'm', prompt: 'hi', maxTokens: 2 });
    expect(done).toMatchObject({ text: 't0 t1 ', reason: 'length', usage: { completionTokens: 2 } });
    expect(await client.listModels()).toHaveLength(1);
    client.close();
  });

  it('fails with DEADLINE_EXCEEDED when the deadline passes mid-stream', async () => {
    const client = new CorralClient({ address });
    const error = await client
      .complete({ model: 'm', prompt: 'hi', maxTokens: 1000 }, { timeoutMs: 150 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorralClientError);
    expect((error as CorralClientError).codeName).toBe('DEADLINE_EXCEEDED');
    client.close();
  });

  it('an AbortSignal cancels the call on the server', async () => {
    const client = new CorralClient({ address });
    const controller = new AbortController();
    let deltas = 0;
    const error = await (async () => {
      for await (const e of client.generate(
        { model: 'm', prompt: 'hi', maxTokens: 1000 },
        { requestId: 'abort-me', signal: controller.signal },
      )) {
        if (e.type === 'delta' && ++deltas === 2) controller.abort();
      }
    })().catch((e: unknown) => e);
    expect((error as CorralClientError).codeName).toBe('CANCELLED');
    await expect.poll(() => cancelledIds).toContain('abort-me');
    client.close();
  });

  it('retries UNAVAILABLE before the first event with the same request id', async () => {
    failuresBeforeSuccess = 2;
    const client = new CorralClient({ address, retryBaseMs: 10 });
    const done = await client.complete({ model: 'm', prompt: 'hi', maxTokens: 1 }, { requestId: 'same-id' });
    expect(done.reason).toBe('length');
    expect(attempts).toEqual(['same-id', 'same-id', 'same-id']);
    client.close();
  });

  it('resume streams the rest of a request after the tokens received', async () => {
    const client = new CorralClient({ address });
    const events = [];
    for await (const e of client.resume({ model: 'm', requestId: 'logged', afterTokenIndex: 3 }))
      events.push(e);
    expect(resumes).toEqual([{ model: 'm', requestId: 'logged', afterTokenIndex: 3 }]);
    expect(events.map((e) => (e.type === 'delta' ? e.index : e.type))).toEqual([3, 4, 'finished']);
    const error = await (async () => {
      for await (const _ of client.resume({ model: 'm', requestId: 'nope', afterTokenIndex: 0 })) break;
    })().catch((e: unknown) => e);
    expect((error as CorralClientError).codeName).toBe('NOT_FOUND');
    expect((error as CorralClientError).details).toBe('request nope is unknown');
    client.close();
  });

  it('gives up after maxAttempts and reports the server message', async () => {
    failuresBeforeSuccess = 5;
    const client = new CorralClient({ address, retryBaseMs: 10, maxAttempts: 2 });
    const error = (await client
      .complete({ model: 'm', prompt: 'hi' })
      .catch((e: unknown) => e)) as CorralClientError;
    expect(error.codeName).toBe('UNAVAILABLE');
    expect(error.details).toBe('no ready replica');
    expect(attempts).toHaveLength(2);
    client.close();
  });

  it('rejects params with both or neither of prompt and messages', async () => {
    const client = new CorralClient({ address });
    await expect(client.complete({ model: 'm' })).rejects.toThrow('exactly one of prompt and messages');
    client.close();
  });
});
