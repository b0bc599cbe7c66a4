import { describe, expect, it } from 'vitest';
import { lookupGpu } from '../../../../common/hardware/gpu-catalog.ts';
import { GiB } from '../../../../common/hardware/memory.ts';
import { type ModelRef, resolveBuiltinModel } from '../../../../common/hardware/model-shape.ts';
import { type DtypeChoice, type Inventory, plan } from '../../../../controller/planner/plan.ts';

function model(name: string): ModelRef {
  const m = resolveBuiltinModel(name);
  if (!m) throw new Error(`unknown model ${name}`);
  return m;
}
function inventory(nodes: number, gpusPerNode: number, gpu: string): Inventory {
  const g = lookupGpu(gpu);
  if (!g) throw new Error(`unknown gpu ${gpu}`);
  return { nodes, gpusPerNode, gpu: g };
}

interface Case {
  name: string;
  model: string;
  dtype: DtypeChoice;
  inv: [number, number, string];
  best: { tp: number; pp: number; nodes: number } | null;
  order?: string[];
  rejectedContains?: RegExp[];
}

const cases: Case[] = [
  {
    name: '405B FP8 on 8xH100 -> TP8',
    model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8',
    dtype: 'fp8',
    inv: [1, 8, 'h100-80g'],
    best: { tp: 8, pp: 1, nodes: 1 },
    order: ['8x1'],
    rejectedContains: [/^FP8 TP4 on H100-80G: 113\.4 GiB weights per GPU > 71\.7 GiB usable$/],
  },
  {
    name: '405B BF16 on 2x8xH100 -> TP8xPP2 above TP16',
    model: 'llama-3.1-405b',
    dtype: 'bf16',
    inv: [2, 8, 'h100-80g'],
    best: { tp: 8, pp: 2, nodes: 2 },
    order: ['8x2', '16x1'],
    rejectedContains: [/^BF16 TP8 on H100-80G: 94\.5 GiB weights per GPU > 71\.7 GiB usable$/],
  },
  {
    name: '405B BF16 on 8xH200 -> TP8',
    model: 'llama-3.1-405b',
    dtype: 'bf16',
    inv: [1, 8, 'h200-141g'],
    best: { tp: 8, pp: 1, nodes: 1 },
    order: ['8x1'],
  },
  {
    name: '405B BF16 on 8xH100 is refused with the memory reason',
    model: 'llama-3.1-405b',
    dtype: 'bf16',
    inv: [1, 8, 'h100-80g'],
    best: null,
    rejectedContains: [/^BF16 TP8 on H100-80G: 94\.5 GiB weights per GPU > 71\.7 GiB usable$/],
  },
  {
    name: '70B BF16 on 8xH100 -> TP8 and TP4, TP2 refused for its KV cache, TP1 for its weights',
    model: 'llama-3.1-70b',
    dtype: 'bf16',
    inv: [1, 8, 'h100-80g'],
    best: { tp: 8, pp: 1, nodes: 1 },
    order: ['8x1', '4x1'],
    rejectedContains: [
      /^BF16 TP1 on H100-80G: 131\.4 GiB weights per GPU > 71\.7 GiB usable$/,
      /^BF16 TP2 on H100-80G: KV cache holds [\d,]+ tokens .* < 1 x 131,072 \(min concurrency x max-model-len\)$/,
    ],
  },
  {
    name: 'a pre-quantized FP8 checkpoint cannot be planned as BF16',
    model: 'meta-llama/Meta-Llama-3.1-405B-Instruct-FP8',
    dtype: 'bf16',
    inv: [1, 8, 'h200-141g'],
    best: null,
    rejectedContains: [/checkpoint meta-llama\/Meta-Llama-3\.1-405B-Instruct-FP8 is FP8/],
  },
];

describe('plan', () => {
  it.each(cases)('$name', (c) => {
    const r = plan(model(c.model), c.dtype, inventory(...c.inv));
    if (c.best === null) expect(r.plans).toEqual([]);
    else expect(r.plans[0]).toMatchObject(c.best);
    if (c.order) expect(r.plans.map((p) => `${p.tp}x${p.pp}`)).toEqual(c.order);
    for (const re of c.rejectedContains ?? []) {
      expect(r.rejected.map((x) => x.reason)).toContainEqual(expect.stringMatching(re));
    }
    // Every shape tried is either a plan or a rejection, never silently dropped.
    const tried = c.inv[0] === 1 ? 4 : 4 + 2 * (c.inv[0] - 1);
    expect(r.plans.length + r.rejected.length).toBe(tried);
  });

  it('says why TP16 ranks below TP8xPP2', () => {
    const r = plan(model('llama-3.1-405b'), 'bf16', inventory(2, 8, 'h100-80g'));
    expect(r.plans[1]?.notes.join(' ')).toContain(
      'vLLM measured TP8xPP2 6.6x faster than TP16 without InfiniBand',
    );
    expect(r.plans[0]?.estimate.tokensPerSecondPerGpu).toBeGreaterThan(
      r.plans[1]?.estimate.tokensPerSecondPerGpu ?? 0,
    );
  });

  it('shows the memory arithmetic of each plan: weights + reserve + KV = usable', () => {
    const p = plan(model('llama-3.1-405b'), 'bf16', inventory(2, 8, 'h100-80g')).plans[0];
    if (!p) throw new Error('no plan');
    expect(p.perGpu.weights + p.perGpu.reserve + p.perGpu.kvCache).toBeCloseTo(p.perGpu.usable, 0);
    expect(p.perGpu.usable).toBeCloseTo(p.perGpu.total * 0.9, 0);
    expect(p.perGpu.weights / GiB).toBeCloseTo(47.25, 1);
    expect(p.maxConcurrency).toBeCloseTo(p.kvTokens / 131072, 6);
    expect(p.gpusPerNode).toBe(8);
    expect(p.quantization).toBeNull();
  });

  it('asks vLLM to quantize a BF16 checkpoint on load under fp8, but not a pre-quantized one', () => {
    const dyn = plan(model('llama-3.1-405b'), 'fp8', inventory(1, 8, 'h100-80g')).plans[0];
    const pre = plan(model('meta-llama/Meta-Llama-3.1-405B-Instruct-FP8'), 'fp8', inventory(1, 8, 'h100-80g'))
      .plans[0];
    expect(dyn?.quantization).toBe('fp8');
    expect(pre?.quantization).toBeNull();
    // All-linear FP8 leaves more room for KV than Meta's scheme, which keeps attention in BF16.
    expect(dyn?.kvTokens).toBeGreaterThan(pre?.kvTokens ?? Number.POSITIVE_INFINITY);
  });

  it('applies the context and concurrency constraints', () => {
    const loose = plan(model('llama-3.1-70b'), 'bf16', inventory(1, 8, 'h100-80g'), { maxModelLen: 8192 });
    expect(loose.plans.map((p) => p.tp)).toContain(2);
    const strict = plan(model('llama-3.1-70b'), 'bf16', inventory(1, 8, 'h100-80g'), { minConcurrency: 8 });
    expect(strict.plans.map((p) => p.tp)).toEqual([8]);
  });

  it('tries both dtypes with auto and rejects a TP that does not divide the heads', () => {
    const r = plan(model('llama-3.1-8b'), 'auto', inventory(1, 6, 'h100-80g'));
    expect(new Set(r.plans.map((p) => p.dtype))).toEqual(new Set(['bf16', 'fp8']));
    expect(r.rejected.map((x) => x.reason)).toContainEqual(
      expect.stringMatching(/TP 6 does not divide the 32 attention heads/),
    );
  });

  it('gives every plan its reasons, and says when FP8 is weight-only (A100)', () => {
    const r = plan(model('meta-llama/Meta-Llama-3.1-405B-Instruct-FP8'), 'fp8', inventory(1, 8, 'a100-80g'));
    expect(r.plans[0]?.tp).toBe(8);
    expect(r.plans[0]?.notes.join(' ')).toContain('FP8 weight-only (Marlin)');
    const seventy = plan(model('llama-3.1-70b'), 'bf16', inventory(1, 8, 'h100-80g'));
    for (const p of seventy.plans) expect(p.notes.length).toBeGreaterThan(0);
  });

  it('counts the replicas an inventory holds', () => {
    const r = plan(model('llama-3.1-70b'), 'bf16', inventory(2, 8, 'h100-80g'));
    expect(r.plans.find((p) => p.tp === 4 && p.pp === 1)?.replicas).toBe(4);
  });
});
