/**
 * Admission end to end on the real request path (controller in-process, real Redis, a fake worker), over gRPC
 * and over HTTP with the openai SDK: unknown, revoked and missing keys are UNAUTHENTICATED (401), a class the
 * tenant was not granted is PERMISSION_DENIED, a spent request or token budget is RESOURCE_EXHAUSTED with a
 * retry hint (trailer `retry-after-ms`; HTTP 429 `Retry-After` in seconds) that is honest: the budgets run on
 * an injected clock, and moving it by the hint, not one millisecond less, admits the same request.
 */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceClient } from '../../../../cli/clients.ts';
import { ManualClock } from '../../../../common/clock.ts';
import { RETRY_AFTER_MS } from '../../../../common/grpc-status.ts';
import { silentLogger } from '../../../../common/log.ts';
import { tenantAdmission } from '../../../../controller/admission/tenant-admission.ts';
import type { RunningController } from '../../../../controller/controller.ts';
import { type HttpServer, startHttpServer } from '../../../../controller/http/http-server.ts';
import { RateLimiter } from '../../../../controller/tenancy/rate-limiter.ts';
import { sha256Hex, TenantDirectory } from '../../../../controller/tenancy/tenant-directory.ts';
import {
  type GenerateRequest,
  type InferenceClient,
  PriorityClass,
} from '../../../../proto/gen/corral/v1/inference.ts';
import { collect } from '../../../helpers/grpc-stream.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { useControllerWithWorker } from '../controller-with-worker.ts';
import { type FakeWorker, generateRequest, until } from '../fake-worker.ts';

const MODEL = 'llama-3.1-8b-instruct';
const KEY = {
  rate: 'sk-rate-0123456789abcdef', // 1 request/s, burst 2
  revoked: 'sk-rate-revoked',
  tokens: 'sk-tokens-0123456789abcdef', // 10 tokens/s, burst 100
  http: 'sk-http-0123456789abcdef', // 1 request per 2 s, burst 1
  free: 'sk-free-0123456789abcdef', // no budgets
};
const directory = TenantDirectory.fromOptions({
  tenants: [
    {
      id: 'rate',
      classes: ['standard', 'batch'],
      requests: { perSecond: 1, burst: 2 },
      keySha256: [sha256Hex(KEY.rate)],
      revokedKeySha256: [sha256Hex(KEY.revoked)],
    },
    { id: 'tokens', tokens: { perSecond: 10, burst: 100 }, keySha256: [sha256Hex(KEY.tokens)] },
    { id: 'http', requests: { perSecond: 0.5, burst: 1 }, keySha256: [sha256Hex(KEY.http)] },
    { id: 'free', keySha256: [sha256Hex(KEY.free)] },
  ],
});

/** The budgets' clock; the controller runs on the system clock. */
const budgetClock = new ManualClock(1_767_225_600_000);
const redis = useRedis();
const fixture = useControllerWithWorker(
  redis,
  {
    deployments: [
      { name: MODEL, model: 'meta-llama/Llama-3.1-8B-Instruct', maxModelLen: 256, defaultMaxTokens: 16 },
    ],
  },
  () => ({
    admission: tenantAdmission(
      directory,
      new RateLimiter({ redis: redis.client, clock: budgetClock, prefix: testPrefix('admission') }),
    ),
    redisPrefix: testPrefix('admission-queue'),
  }),
);
let controller: RunningController;
let http: HttpServer;
let worker: FakeWorker;
const clients: InferenceClient[] = [];

beforeAll(async () => {
  controller = fixture.controller;
  worker = fixture.worker;
  http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    path: controller.path,
    admission: controller.admission,
    log: silentLogger,
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await http?.close();
});

function client(apiKey?: string): InferenceClient {
  const c = inferenceClient(controller.address, apiKey);
  clients.push(c);
  return c;
}

const request = (over: Partial<GenerateRequest> = {}) => generateRequest({ model: MODEL, ...over });

/** Runs a generation to its end: the text, or the status it failed with (and its retry hint). */
async function generate(
  apiKey: string | undefined,
  over: Partial<GenerateRequest> = {},
): Promise<{ ok: true; text: string } | { ok: false; code: status; details: string; retryAfterMs?: number }> {
  const call = client(apiKey).generate(request(over), new Metadata(), { deadline: Date.now() + 10_000 });
  try {
    return { ok: true, text: (await collect(call)).text };
  } catch (e) {
    const se = e as ServiceError;
    const hint = se.metadata?.get(RETRY_AFTER_MS)[0];
    return {
      ok: false,
      code: se.code,
      details: se.details,
      ...(hint === undefined ? {} : { retryAfterMs: Number(hint) }),
    };
  }
}

function unary<Res>(call: (cb: (e: ServiceError | null, r: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => call((e, r) => (e ? reject(e) : resolve(r))));
}

const UNAUTHENTICATED = { ok: false, code: status.UNAUTHENTICATED, details: 'invalid or missing API key' };

describe('gRPC: who may call', () => {
  it.each([
    ['missing', undefined],
    ['unknown', 'sk-nobody'],
    ['revoked', KEY.revoked],
  ])('a %s key is UNAUTHENTICATED on Generate, ListModels, Cancel and Resume', async (_, key) => {
    expect(await generate(key)).toEqual(UNAUTHENTICATED);
    const c = client(key);
    const refusals = [
      unary((cb) => c.listModels({}, cb)),
      unary((cb) => c.cancel({ requestId: 'r-1' }, cb)),
      collect(c.resume({ model: MODEL, requestId: 'r-1', afterTokenIndex: 0 })),
    ];
    for (const p of refusals) {
      await expect(p).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
        details: 'invalid or missing API key',
      });
    }
    expect(worker.calls).toEqual([]);
  });

  it('a class the tenant was not granted is PERMISSION_DENIED, and nothing runs', async () => {
    const r = await generate(KEY.tokens, { priorityClass: PriorityClass.PRIORITY_CLASS_INTERACTIVE });
    expect(r).toEqual({
      ok: false,
      code: status.PERMISSION_DENIED,
      details: 'tenant tokens may not submit interactive requests',
    });
    expect(worker.calls).toEqual([]);
  });
});

describe("gRPC: another tenant's requests", () => {
  it('Resume of another tenant request is NOT_FOUND, as if it did not exist; its owner resumes it', async () => {
    expect(await generate(KEY.free, { requestId: 'free-1' })).toEqual({ ok: true, text: 'Hello, world' });
    const resume = (key: string) =>
      collect(client(key).resume({ model: MODEL, requestId: 'free-1', afterTokenIndex: 0 }));
    await expect(resume(KEY.tokens)).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: `request free-1 of model ${MODEL} is unknown (never accepted, or ended long ago)`,
    });
    expect((await resume(KEY.free)).text).toBe('Hello, world');
  });

  it('Cancel of another tenant request is found: false and leaves it running; its owner cancels it', async () => {
    worker.script = { t: 'hang' };
    try {
      const owner = client(KEY.free);
      const call = owner.generate(request({ requestId: 'free-2' }), new Metadata(), {
        deadline: Date.now() + 10_000,
      });
      const outcome = collect(call).catch((e: ServiceError) => e);
      const upstream = await until('the request running on the worker', () =>
        worker.calls.find((c) => c.request.request?.requestId === 'free-2'),
      );
      const cancel = (key: string) =>
        unary<{ found: boolean }>((cb) => client(key).cancel({ requestId: 'free-2' }, cb));
      expect(await cancel(KEY.tokens)).toEqual({ found: false });
      expect(await controller.lanes.lanes.get(MODEL)?.queue.get('free-2')).toMatchObject({
        state: 'dispatched',
      });
      expect(upstream.cancelled).toBe(false);
      expect(await cancel(KEY.free)).toEqual({ found: true });
      expect(await outcome).toMatchObject({ code: status.CANCELLED });
      await upstream.whenCancelled;
    } finally {
      worker.script = { t: 'stream', deltas: ['Hello', ', ', 'world'] };
    }
  });
});

describe('gRPC: budgets', () => {
  it('over the request budget: RESOURCE_EXHAUSTED with retry-after-ms; waiting that long admits', async () => {
    expect(await generate(KEY.rate)).toEqual({ ok: true, text: 'Hello, world' });
    expect(await generate(KEY.rate)).toEqual({ ok: true, text: 'Hello, world' });
    const refused = await generate(KEY.rate);
    expect(refused).toMatchObject({ ok: false, code: status.RESOURCE_EXHAUSTED, retryAfterMs: 1000 });
    expect(refused.ok || refused.details).toBe('tenant rate is over its requests budget; retry in 1000 ms');
    budgetClock.advance(999);
    expect(await generate(KEY.rate)).toMatchObject({ code: status.RESOURCE_EXHAUSTED, retryAfterMs: 1 });
    budgetClock.advance(1);
    expect(await generate(KEY.rate)).toEqual({ ok: true, text: 'Hello, world' });
  });

  it('over the token budget (prompt + max_tokens): the same, with the refill time of the missing tokens', async () => {
    // Each request needs its prompt's tokens + 50 of the 100 the bucket holds: the second finds too few left.
    expect(await generate(KEY.tokens, { maxTokens: 50 })).toEqual({ ok: true, text: 'Hello, world' });
    const refused = await generate(KEY.tokens, { maxTokens: 50 });
    if (refused.ok || refused.retryAfterMs === undefined) throw new Error('expected a refusal with a hint');
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain('tenant tokens is over its tokens budget');
    // 10 tokens/s: a whole number of tokens missing is a multiple of 100 ms.
    expect(refused.retryAfterMs % 100).toBe(0);
    budgetClock.advance(refused.retryAfterMs - 1);
    expect(await generate(KEY.tokens, { maxTokens: 50 })).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    budgetClock.advance(1);
    expect(await generate(KEY.tokens, { maxTokens: 50 })).toEqual({ ok: true, text: 'Hello, world' });
  });

  it('a request larger than the whole token budget is INVALID_ARGUMENT: waiting would never help', async () => {
    const r = await generate(KEY.tokens, { maxTokens: 200 });
    expect(r).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect(r.ok || r.retryAfterMs).toBeUndefined();
  });
});

describe('HTTP with the openai SDK', () => {
  const sdk = (apiKey: string) => new OpenAI({ baseURL: `http://${http.address}/v1`, apiKey, maxRetries: 0 });
  const messages = [{ role: 'user' as const, content: 'Capital of France?' }];

  it('an unknown or revoked key is AuthenticationError (401)', async () => {
    for (const key of ['sk-nobody', KEY.revoked]) {
      await expect(
        sdk(key).chat.completions.create({ model: MODEL, messages, max_completion_tokens: 4 }),
      ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      await expect(sdk(key).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    }
  });

  it('over budget is RateLimitError with Retry-After in whole seconds; waiting that long admits', async () => {
    const create = () =>
      sdk(KEY.http).chat.completions.create({ model: MODEL, messages, max_completion_tokens: 4 });
    expect((await create()).choices[0]?.message.content).toBe('Hello, world');
    const e = await create().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    const retryAfterS = Number((e as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after'));
    expect(retryAfterS).toBe(2);
    budgetClock.advance(retryAfterS * 1000);
    expect((await create()).choices[0]?.message.content).toBe('Hello, world');
  });
});
