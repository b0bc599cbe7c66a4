import { describe, expect, it } from 'vitest';
import {
  BUILTIN_MODELS,
  parameterCount,
  resolveBuiltinModel,
} from '../../../../common/hardware/model-shape.ts';

describe('parameterCount', () => {
  // Meta's model cards: 8.03 B, 70.55 B, 405.85 B (VLLM.md table).
  it.each([
    ['llama-3.1-8b', 8.03e9],
    ['llama-3.1-70b', 70.55e9],
    ['llama-3.1-405b', 405.85e9],
  ])('%s has the published parameter count', (id, published) => {
    const shape = BUILTIN_MODELS[id];
    if (!shape) throw new Error(`missing ${id}`);
    expect(Math.abs(parameterCount(shape) - published) / published).toBeLessThan(0.001);
  });
});

describe('resolveBuiltinModel', () => {
  it.each([
    ['llama-3.1-405b', 'llama-3.1-405b', null],
    ['LLAMA-3.1-405B-Instruct', 'llama-3.1-405b', null],
    ['meta-llama/Llama-3.1-405B-Instruct', 'llama-3.1-405b', null],
    ['meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', 'llama-3.1-405b', 'fp8'],
    ['meta-llama/Llama-3.1-70B', 'llama-3.1-70b', null],
    ['llama-3.1-8b-instruct', 'llama-3.1-8b', null],
  ])('%s -> %s (pre-quantized %s)', (name, id, pre) => {
    const ref = resolveBuiltinModel(name);
    expect(ref?.shape.id).toBe(id);
    expect(ref?.preQuantized).toBe(pre);
    expect(ref?.name).toBe(name);
  });

  it('returns null for unknown models', () => {
    expect(resolveBuiltinModel('mistralai/Mistral-7B-v0.1')).toBeNull();
  });
});
