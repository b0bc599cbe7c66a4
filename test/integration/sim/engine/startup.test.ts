/**
 * Start-up like vLLM: the port stays closed while the weights load (weight bytes / --sim-load-gbps, in simulated
 * time), the KV cache is sized from GPU memory and logged; a model that does not fit exits 1 with vLLM's text.
 * The step times (calibrated or fixed) and the KV block size are chosen and logged at start-up too.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { lookupGpu } from '../../../../common/hardware/gpu-catalog.ts';
import { groupMemory } from '../../../../common/hardware/group-memory.ts';
import { BUILTIN_MODELS } from '../../../../common/hardware/model-shape.ts';
import { freePort, SimProcess } from './sim-process.ts';

const started: SimProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

function sim(args: string[]): SimProcess {
  const p = new SimProcess(['serve', ...args, '--host', '127.0.0.1']);
  started.push(p);
  return p;
}

const refused = (port: number) =>
  fetch(`http://127.0.0.1:${port}/health`).then(
    () => false,
    () => true,
  );

describe('engine simulator start-up', () => {
  it('keeps the port closed while the weights load in simulated time, then logs the KV cache of the planner', async () => {
    const port = await freePort();
    // 8B BF16 is ~16 GB on one GPU: 4 simulated seconds at 4 GB/s, 1 s of wall time at time scale 4.
    const p = sim([
      'meta-llama/Llama-3.1-8B-Instruct',
      '--port',
      String(port),
      '--sim-load-gbps',
      '4',
      '--time-scale',
      '4',
    ]);
    await p.waitForOutput('vLLM API server version');
    expect(await refused(port)).toBe(true);
    await p.waitForOutput('Application startup complete.');
    const seconds = Number(/Model loading took [\d.]+ GiB and ([\d.]+) seconds/.exec(p.stdout)?.[1]);
    expect(seconds).toBeCloseTo(16.06e9 / 4e9, 1);
    const mem = groupMemory(
      BUILTIN_MODELS['llama-3.1-8b'] as never,
      lookupGpu('h100-80g') as never,
      { tp: 1, pp: 1, dtype: 'bf16', fp8Scheme: 'all-linear', kvCacheDtype: 'bf16' },
      { gpuMemoryUtilization: 0.9, maxNumSeqs: 1024, maxNumBatchedTokens: 8192 },
    );
    expect(p.stdout).toContain(`GPU KV cache size: ${mem.kvTokens.toLocaleString('en-US')} tokens`);
    expect(p.stdout).toContain(
      `Maximum concurrency for 131,072 tokens per request: ${(mem.kvTokens / 131072).toFixed(2)}x`,
    );
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it('exits 1 with vLLM error text when the model does not fit, never opening the port', async () => {
    const port = await freePort();
    // 405B in BF16 is 94.5 GiB per GPU at TP8: more than an 80 GB H100 holds.
    const p = sim([
      'meta-llama/Llama-3.1-405B-Instruct',
      '--tensor-parallel-size',
      '8',
      '--port',
      String(port),
      '--sim-startup-ms',
      '100',
    ]);
    expect(await p.exited).toBe(1);
    expect(p.stderr).toContain('torch.OutOfMemoryError: CUDA out of memory.');
    expect(p.stderr).toContain('RuntimeError: Engine core initialization failed.');
    expect(p.stdout).not.toContain('Application startup complete.');
    expect(await refused(port)).toBe(true);
  });

  it('exits 1 when one max_model_len request does not fit the KV cache', async () => {
    const p = sim([
      'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8',
      '--tensor-parallel-size',
      '8',
      '--gpu-memory-utilization',
      '0.8',
      '--port',
      String(await freePort()),
      '--sim-startup-ms',
      '100',
    ]);
    expect(await p.exited).toBe(1);
    expect(p.stderr).toMatch(
      /ValueError: To serve at least one request with the models's max seq len \(131072\), \([\d.]+ GiB KV cache is needed/,
    );
  });
});

describe('engine simulator step times and KV blocks, chosen at start-up', () => {
  const FP8_405B = ['meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', '--tensor-parallel-size', '8'];
  const FAST = ['--max-model-len', '16384', '--sim-startup-ms', '100'];

  it('runs the calibrated latency model by default and sizes the KV cache in --block-size blocks', async () => {
    const port = await freePort();
    const p = sim([...FP8_405B, ...FAST, '--block-size', '32', '--port', String(port)]);
    await p.waitForOutput('Application startup complete.');
    expect(p.stdout).toContain('latency model: llama-3.1-405b-tp8-h100.json (tp=8 pp=1 fp8=true)');
    const mem = groupMemory(
      BUILTIN_MODELS['llama-3.1-405b'] as never,
      lookupGpu('h100-80g') as never,
      { tp: 8, pp: 1, dtype: 'fp8', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
      { gpuMemoryUtilization: 0.9, maxNumSeqs: 1024, maxNumBatchedTokens: 8192, blockSize: 32 },
    );
    expect(mem.kvTokens % 32).toBe(0);
    expect(p.stdout).toContain(`GPU KV cache size: ${mem.kvTokens.toLocaleString('en-US')} tokens`);
    const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: FP8_405B[0], prompt: 'hello', max_tokens: 3, ignore_eos: true }),
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
  });

  it('pins fixed step times with --sim-itl-ms, and refuses a --block-size vLLM does not offer', async () => {
    const fixed = sim([...FP8_405B, ...FAST, '--sim-itl-ms', '5', '--port', String(await freePort())]);
    await fixed.waitForOutput('Application startup complete.');
    expect(fixed.stdout).toContain('fixed latency: 50 ms per step that prefills, 5 ms per decode step');
    const bad = sim([...FP8_405B, '--block-size', '12', '--port', String(await freePort())]);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr).toContain(
      'vllm serve: error: argument --block-size: invalid choice: 12 (choose from 1, 8, 16, 32, 64, 128, 256)',
    );
  });
});
