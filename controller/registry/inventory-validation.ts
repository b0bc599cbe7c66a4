/** What a worker's Hello must carry before the controller will route to it or launch on it. */
import type { FieldError } from '../../common/errors.ts';
import type { Inventory } from '../../proto/gen/corral/v1/worker.ts';

const ADDRESS = /^(?:\[[^\]]+\]|[^:\s]+):\d{1,5}$/;

export function inventoryErrors(inv: Inventory | undefined): FieldError[] {
  if (!inv) return [{ path: 'hello.inventory', message: 'is required' }];
  const errors: FieldError[] = [];
  const at = (path: string, message: string) => errors.push({ path: `hello.inventory.${path}`, message });
  if (inv.workerId.trim() === '') at('worker_id', 'must not be empty');
  if (inv.nodeName.trim() === '') at('node_name', 'must not be empty');
  // The controller dials this address for Worker.Generate; without it the worker could never serve.
  if (!ADDRESS.test(inv.address)) at('address', `must be host:port, got ${JSON.stringify(inv.address)}`);
  if (!inv.gpus) at('gpus', 'is required');
  else {
    if (!Number.isInteger(inv.gpus.count) || inv.gpus.count < 1)
      at('gpus.count', 'must be a positive integer');
    if (inv.gpus.type.trim() === '') at('gpus.type', 'must not be empty');
  }
  return errors;
}
