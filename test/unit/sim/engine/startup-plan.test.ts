import { describe, expect, it } from 'vitest';
import { lookupGpu } from '../../../../common/hardware/gpu-catalog.ts';
import { groupMemory } from '../../../../common/hardware/group-memory.ts';
import { GiB } from '../../../../common/hardware/memory.ts';
import { BUILTIN_MODELS } from '../../../../common/hardware/model-shape.ts';
import { PROFILE_MS, planStartup, type StartupInput } from '../../../../sim/engine/startup-plan.ts';

const BASE: StartupInput = {
  model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8',
  tensorParallelSize: 8,
  pipelineParallelSize: 1,
  fp8: false,
  kvCacheDtype: 'bf16',
  gpuType: 'h100-80g',
  gpuMemoryUtilization: 0.9,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 8192,
  maxModelLen: 131072,
  blockSize: 16,
  kvTokens: undefined,
  startupMs: undefined,
  loadGBps: 10,
};

describe('planStartup', () => {
  it('sizes the KV cache with the planner arithmetic and loads the weights at the given bandwidth', () => {
    const p = planStartup(BASE);
    const mem = groupMemory(
      BUILTIN_MODELS['llama-3.1-405b'] as never,
      lookupGpu('h100-80g') as never,
      { tp: 8, pp: 1, dtype: 'fp8', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
      { gpuMemoryUtilization: 0.9, maxNumSeqs: 1024, maxNumBatchedTokens: 8192 },
    );
    expect(p.result).toEqual({
      kind: 'ok',
      kvTokens: mem.kvTokens,
      concurrency: mem.kvTokens / 131072,
    });
    const weights = mem.stages[0]?.weights ?? 0;
    expect(p.weightGiBPerGpu).toBeCloseTo(weights / GiB, 6);
    expect(p.loadMs).toBeCloseTo((weights / 10e9) * 1000, 6);
    expect(p.profileMs).toBe(PROFILE_MS);
  });

  it('sizes the KV cache in blocks of --block-size tokens: the same bytes, whole blocks of the larger size', () => {
    const at = (blockSize: number) => {
      const r = planStartup({ ...BASE, blockSize }).result;
      return r.kind === 'ok' ? r.kvTokens : 0;
    };
    const bytesPerToken = groupMemory(
      BUILTIN_MODELS['llama-3.1-405b'] as never,
      lookupGpu('h100-80g') as never,
      { tp: 8, pp: 1, dtype: 'fp8', fp8Scheme: 'meta', kvCacheDtype: 'bf16' },
      { gpuMemoryUtilization: 0.9, maxNumSeqs: 1024, maxNumBatchedTokens: 8192 },
    ).limiting.kvBytesPerToken;
    const cacheBytes = at(16) * bytesPerToken;
    for (const size of [1, 128]) {
      expect(at(size) % size).toBe(0);
      // Each size rounds the same KV memory down to its own whole blocks.
      expect(Math.abs(at(size) * bytesPerToken - cacheBytes)).toBeLessThan(128 * bytesPerToken);
    }
    expect(at(1)).toBeGreaterThanOrEqual(at(16));
    expect(at(128)).toBeLessThanOrEqual(at(16));
  });

  it('--sim-startup-ms and --sim-kv-tokens replace the computed figures', () => {
    const p = planStartup({ ...BASE, startupMs: 1000, kvTokens: 200_000 });
    expect([p.loadMs, p.profileMs]).toEqual([700, 300]);
    expect(p.result).toMatchObject({ kind: 'ok', kvTokens: 200_000 });
  });

  it('fails like vLLM when the weights exceed the GPU, when nothing is left for the KV cache, or when one max_model_len request does not fit', () => {
    const oom = planStartup({ ...BASE, model: 'meta-llama/Llama-3.1-405B-Instruct' });
    expect(oom.result).toMatchObject({
      kind: 'fail',
      error: expect.stringMatching(/^torch.OutOfMemoryError: CUDA out of memory/),
    });
    const none = planStartup({ ...BASE, gpuMemoryUtilization: 0.6 });
    expect(none.result).toMatchObject({
      kind: 'fail',
      error: expect.stringContaining('No available memory for the cache blocks'),
    });
    const short = planStartup({ ...BASE, gpuMemoryUtilization: 0.8 });
    expect(short.result).toMatchObject({
      kind: 'fail',
      error: expect.stringMatching(
        /^ValueError: To serve at least one request with the models's max seq len \(131072\), \([\d.]+ GiB KV cache is needed.*estimated maximum model length is \d+\./,
      ),
    });
  });

  it('sizes a model that is not built in from the parameter count in its name', () => {
    const p = planStartup({ ...BASE, model: 'acme/Foo-70B', fp8: false, tensorParallelSize: 4 });
    expect(p.weightGiBPerGpu).toBeCloseTo((70e9 * 2) / 4 / GiB, 6);
    expect(p.result).toMatchObject({ kind: 'ok', kvTokens: 524_288 });
  });
});
