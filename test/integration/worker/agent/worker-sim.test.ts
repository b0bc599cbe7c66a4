/**
 * The worker with its default engine, the corral engine simulator (bin/corral-engine-sim), against a fake
 * controller: LaunchEngine -> READY, streamed Worker.Generate with exact token counts, vLLM's error text for
 * a context overflow, cancel mid-stream (the engine's running count falls back to 0), load in heartbeats,
 * SIGKILL of the engine -> EXITED reported and a restart, SIGTERM -> clean exit.
 */
import { credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateEvent, GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';
import { EngineState, WorkerClient } from '../../../../proto/gen/corral/v1/worker.ts';
import { readEngineLoad } from '../../../../worker/engine/metrics.ts';
import { FakeRegistry, WorkerProcess, waitFor } from './worker-harness.ts';

const MODEL = 'llama-3.1-8b-instruct';
const registry = new FakeRegistry();
let worker: WorkerProcess;
let client: WorkerClient;

function request(over: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    model: MODEL,
    requestId: '',
    input: { $case: 'prompt', value: 'The capital of France is' },
    maxTokens: 16,
    sampling: { stop: [], ignoreEos: true, minTokens: 0 },
    priority: 0,
    returnTokenIds: false,
    priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
    ...over,
  };
}

function generate(req: GenerateRequest) {
  const md = new Metadata();
  md.set('x-request-id', `sim-${Math.random().toString(36).slice(2)}`);
  const call = client.generate({ engineId: 'e1', request: req }, md);
  const events: GenerateEvent[] = [];
  call.on('data', (e: GenerateEvent) => events.push(e));
  const done = new Promise<ServiceError | undefined>((resolve) => {
    call.on('error', (e: ServiceError) => resolve(e));
    call.on('end', () => resolve(undefined));
  });
  return { events, done, call };
}

async function runningOnEngine(): Promise<number | undefined> {
  const address = registry.engine('e1')?.httpAddress ?? '';
  return readEngineLoad(await (await fetch(`http://${address}/metrics`)).text()).running;
}

beforeAll(async () => {
  await registry.start();
  worker = new WorkerProcess([
    '--controller',
    `127.0.0.1:${registry.port}`,
    '--gpus',
    '8',
    '--gpu-type',
    'h100-80g',
    '--node-name',
    'sim-node',
    '--restart-backoff-ms',
    '200',
  ]);
  client = new WorkerClient(await worker.listening(), credentials.createInsecure());
  await waitFor('hello', () => registry.hellos[0]);
  registry.send({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 300 } } });
});

afterAll(async () => {
  client?.close();
  await worker?.stop();
  await registry.close();
});

describe('worker with the engine simulator', () => {
  it('launches the simulator and reports READY with its max_model_len', async () => {
    registry.send({
      msg: {
        $case: 'launch',
        value: {
          engineId: 'e1',
          model: 'meta-llama/Llama-3.1-8B-Instruct',
          args: [
            'meta-llama/Llama-3.1-8B-Instruct',
            '--served-model-name',
            MODEL,
            '--max-model-len',
            '4096',
            '--sim-startup-ms',
            '300',
            '--sim-ttft-ms',
            '20',
            '--sim-itl-ms',
            '5',
          ],
          env: {},
          gpus: 1,
          headless: false,
        },
      },
    });
    await waitFor('e1 ready', () => registry.engine('e1')?.state === EngineState.ENGINE_STATE_READY, 60_000);
    await waitFor('max_model_len', () => registry.engine('e1')?.maxModelLen === 4096);
  });

  it('streams a completion whose deltas add up to the reported usage', async () => {
    const { events, done } = generate(request({ returnTokenIds: true }));
    expect(await done).toBeUndefined();
    const started = events[0]?.event;
    expect(started?.$case).toBe('started');
    const promptTokens = started?.$case === 'started' ? started.value.promptTokens : 0;
    expect(promptTokens).toBeGreaterThan(0);
    expect(started?.$case === 'started' && started.value.promptTokenIds).toHaveLength(promptTokens);
    const deltas = events.flatMap((e) => (e.event?.$case === 'delta' ? [e.event.value] : []));
    const generated = deltas.reduce((n, d) => n + d.tokenCount, 0);
    expect(generated).toBe(16);
    expect(deltas.flatMap((d) => d.tokenIds)).toHaveLength(16);
    const fin = events.at(-1)?.event;
    expect(fin?.$case === 'finished' && fin.value.usage).toEqual({
      promptTokens,
      completionTokens: 16,
      totalTokens: promptTokens + 16,
    });
  });

  it('streams a chat completion', async () => {
    const { events, done } = generate(
      request({
        input: { $case: 'chat', value: { messages: [{ role: 'user', content: 'Say hi' }] } },
        maxTokens: 5,
      }),
    );
    expect(await done).toBeUndefined();
    const fin = events.at(-1)?.event;
    expect(fin?.$case === 'finished' && fin.value.usage?.completionTokens).toBe(5);
    expect(
      events
        .filter((e) => e.event?.$case === 'delta')
        .every((e) => e.event?.$case === 'delta' && e.event.value.tokenIds.length === 0),
    ).toBe(true);
  });

  it("passes on the engine's context-length error as INVALID_ARGUMENT", async () => {
    const error = await generate(request({ maxTokens: 10_000 })).done;
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toContain("This model's maximum context length is 4096 tokens");
  });

  it('reports load in heartbeats and drops the engine request on cancel', async () => {
    const { events, done, call } = generate(request({ maxTokens: 2000 }));
    await waitFor('tokens', () => events.length >= 5);
    await waitFor('running in a heartbeat', () => (registry.engine('e1')?.running ?? 0) >= 1);
    expect(await runningOnEngine()).toBe(1);
    call.cancel();
    expect((await done)?.code).toBe(status.CANCELLED);
    const deadline = Date.now() + 10_000;
    while ((await runningOnEngine()) !== 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(await runningOnEngine()).toBe(0);
  });

  it('reports a SIGKILLed engine as EXITED and restarts it', async () => {
    const { exited, afterMs } = await registry.killEngine('e1');
    console.log(`simulator exit reported ${afterMs} ms after SIGKILL`);
    expect(exited.lastExit).toMatchObject({ code: -1, signal: 'SIGKILL' });
    await waitFor(
      'ready again',
      () => {
        const e = registry.engine('e1');
        return e?.state === EngineState.ENGINE_STATE_READY && e.restarts === 1;
      },
      60_000,
    );
    expect(await generate(request({ maxTokens: 3 })).done).toBeUndefined();
  });

  it('exits 0 on SIGTERM after stopping the simulator', async () => {
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(registry.engine('e1')?.state).toBe(EngineState.ENGINE_STATE_STOPPED);
  });
});
