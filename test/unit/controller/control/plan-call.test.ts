import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../../common/errors.ts';
import { planCall, registeredInventory } from '../../../../controller/control/plan-call.ts';
import type { PlanRequest } from '../../../../proto/gen/corral/v1/control.ts';
import type { Inventory } from '../../../../proto/gen/corral/v1/worker.ts';

const request = (r: Partial<PlanRequest>): PlanRequest => ({
  model: 'llama-3.1-405b',
  gpus: '',
  dtype: '',
  kvCacheDtype: '',
  ...r,
});

const node = (id: string, count: number, type = 'h100-80g'): Inventory => ({
  workerId: id,
  nodeName: id,
  address: '',
  gpus: { count, type, memoryBytes: 0 },
  labels: {},
  version: '',
  engineHost: '',
});

describe('Control.Plan', () => {
  it('ranks TP8 x PP2 first for 405B BF16 on 2x8 H100 and gives each node rank its vLLM arguments', () => {
    const r = planCall(request({ dtype: 'bf16', gpus: '2x8xh100-80g' }), []);
    const best = r.plans[0];
    expect([best?.tp, best?.pp, best?.nodes]).toEqual([8, 2, 2]);
    expect(best?.vllmArgs).toHaveLength(2);
    expect(best?.vllmArgs[1]?.args).toContain('--headless');
    expect(best?.perGpu?.weights).toBeGreaterThan(0);
    expect(r.inventory).toBe('2x8xh100-80g');
  });

  it('answers no plan with the memory reason when the model does not fit', () => {
    const r = planCall(request({ dtype: 'bf16', gpus: '1x8xh100-80g' }), []);
    expect(r.plans).toEqual([]);
    expect(r.rejected.map((x) => x.reason).join('\n')).toMatch(/weights per GPU .* usable/);
  });

  it('plans over the registered workers when no inventory is given', () => {
    const workers = [node('a', 8), node('b', 8), node('c', 2, 'l40s')];
    const r = planCall(request({ dtype: 'bf16' }), workers);
    expect(r.inventory).toBe('2x8xh100-80g');
    expect(r.plans[0]?.pp).toBe(2);
  });

  it('names every bad field the way gRPC spells it', () => {
    const call = () =>
      planCall(
        request({ model: '', gpus: '2x8xb300', dtype: 'int4', maxModelLen: 0, kvCacheDtype: 'q' }),
        [],
      );
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(
      /model: required.*gpus: unknown GPU type 'b300'.*dtype: must be.*max_model_len.*kv_cache_dtype/,
    );
  });

  it('says so when there is neither an inventory nor a registered GPU worker', () => {
    expect(() => planCall(request({}), [])).toThrow(/gpus: required.*no worker with GPUs is registered/);
  });
});

describe('registeredInventory', () => {
  it('takes the largest set of identical nodes and ignores unknown GPU types', () => {
    const inv = registeredInventory([
      node('a', 8),
      node('b', 4),
      node('c', 4),
      node('d', 4),
      node('e', 8, 'tpu'),
    ]);
    expect(inv && [inv.nodes, inv.gpusPerNode, inv.gpu.id]).toEqual([3, 4, 'h100-80g']);
    expect(registeredInventory([node('x', 0)])).toBeUndefined();
  });
});
