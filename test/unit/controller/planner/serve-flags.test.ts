import { describe, expect, it } from 'vitest';
import { lookupGpu } from '../../../../common/hardware/gpu-catalog.ts';
import { resolveBuiltinModel } from '../../../../common/hardware/model-shape.ts';
import { type Plan, plan } from '../../../../controller/planner/plan.ts';
import { vllmServeArgs } from '../../../../controller/planner/serve-flags.ts';

function best(name: string, dtype: 'bf16' | 'fp8', nodes: number, gpu: string): Plan {
  const m = resolveBuiltinModel(name);
  const g = lookupGpu(gpu);
  if (!m || !g) throw new Error('bad fixture');
  const p = plan(m, dtype, { nodes, gpusPerNode: 8, gpu: g }).plans[0];
  if (!p) throw new Error('no plan');
  return p;
}

describe('vllmServeArgs', () => {
  it('gives rank 0 and a headless rank 1 for TP8 x PP2', () => {
    const ranks = vllmServeArgs(best('meta-llama/Llama-3.1-405B-Instruct', 'bf16', 2, 'h100-80g'), {
      masterAddr: '10.0.0.1',
    });
    const common = [
      'meta-llama/Llama-3.1-405B-Instruct',
      '--tensor-parallel-size',
      '8',
      '--pipeline-parallel-size',
      '2',
      '--max-model-len',
      '131072',
      '--gpu-memory-utilization',
      '0.9',
      '--nnodes',
      '2',
    ];
    const tail = ['--master-addr', '10.0.0.1', '--master-port', '29501'];
    expect(ranks).toEqual([
      [...common, '--node-rank', '0', ...tail],
      [...common, '--node-rank', '1', ...tail, '--headless'],
    ]);
  });

  it('single node: no multi-node flags; --quantization fp8 only for a BF16 checkpoint', () => {
    const [pre] = vllmServeArgs(best('meta-llama/Meta-Llama-3.1-405B-Instruct-FP8', 'fp8', 1, 'h100-80g'));
    expect(pre).not.toContain('--quantization');
    expect(pre).not.toContain('--nnodes');
    const [dyn] = vllmServeArgs(best('llama-3.1-405b', 'fp8', 1, 'h100-80g'), { model: '/models/405b' });
    expect(dyn?.[0]).toBe('/models/405b');
    expect(dyn?.join(' ')).toContain('--quantization fp8');
  });

  it('refuses a multi-node plan without the master address', () => {
    expect(() => vllmServeArgs(best('llama-3.1-405b', 'bf16', 2, 'h100-80g'))).toThrow(/masterAddr/);
  });
});
