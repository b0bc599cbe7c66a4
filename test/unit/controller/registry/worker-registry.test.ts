import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { CorralError } from '../../../../common/errors.ts';
import { silentLogger } from '../../../../common/log.ts';
import { inventoryErrors } from '../../../../controller/registry/inventory-validation.ts';
import {
  type RegistryEvent,
  type Session,
  WorkerRegistry,
} from '../../../../controller/registry/worker-registry.ts';
import type { ControllerMessage } from '../../../../proto/gen/corral/v1/registry.ts';
import { EngineState, type Inventory } from '../../../../proto/gen/corral/v1/worker.ts';

const inv = (workerId: string, over: Partial<Inventory> = {}): Inventory => ({
  workerId,
  nodeName: workerId,
  address: '127.0.0.1:5000',
  gpus: { count: 8, type: 'h100-80g', memoryBytes: 80e9 },
  labels: {},
  version: '0.1.0',
  engineHost: '127.0.0.1',
  ...over,
});

function session(): Session & { sent: ControllerMessage[]; closed: string[] } {
  const s = {
    sent: [] as ControllerMessage[],
    closed: [] as string[],
    send: (m: ControllerMessage) => s.sent.push(m),
    close: (r: string) => s.closed.push(r),
  };
  return s;
}

function setup() {
  const clock = new ManualClock(1000);
  const registry = new WorkerRegistry({ workerTimeoutMs: 3000, clock, log: silentLogger });
  const events: RegistryEvent[] = [];
  registry.onEvent((e) => events.push(e));
  return { clock, registry, events };
}

describe('WorkerRegistry', () => {
  it('refuses a second live stream for one worker id, naming the first peer', () => {
    const { registry } = setup();
    registry.attach(inv('n1'), 'ipv4:127.0.0.1:40000', session());
    try {
      registry.attach(inv('n1'), 'ipv4:127.0.0.1:40001', session());
      throw new Error('expected ALREADY_EXISTS');
    } catch (e) {
      expect(e).toBeInstanceOf(CorralError);
      expect((e as CorralError).code).toBe('already_exists');
      expect((e as CorralError).message).toBe(
        'worker n1 is already registered (connected from ipv4:127.0.0.1:40000)',
      );
    }
  });

  it('accepts the worker again once its stream ended', () => {
    const { registry, events } = setup();
    const id = registry.attach(inv('n1'), 'p1', session());
    registry.detach('n1', id, 'stream ended');
    expect(registry.get('n1')?.conn).toMatchObject({ t: 'lost', reason: 'stream ended' });
    registry.attach(inv('n1'), 'p2', session());
    expect(registry.get('n1')?.conn.t).toBe('connected');
    expect(events.map((e) => e.t)).toEqual(['connected', 'lost', 'connected']);
  });

  it('a silent worker is lost after workerTimeoutMs and its stream is ended', () => {
    const { registry, clock, events } = setup();
    const s = session();
    const id = registry.attach(inv('n1'), 'p1', s);
    clock.advance(2000);
    registry.heartbeat('n1', id, { engines: [], sentAtMs: 0, draining: false });
    clock.advance(3000);
    registry.sweep();
    expect(registry.get('n1')?.conn.t).toBe('connected');
    clock.advance(1);
    registry.sweep();
    expect(registry.get('n1')?.conn).toMatchObject({
      t: 'lost',
      reason: 'no heartbeat for 3001 ms (timeout 3000 ms)',
    });
    expect(s.closed).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ t: 'lost', workerId: 'n1' });
  });

  it('ignores messages of a replaced session', () => {
    const { registry } = setup();
    const old = registry.attach(inv('n1'), 'p1', session());
    registry.detach('n1', old, 'ended');
    registry.attach(inv('n1'), 'p2', session());
    registry.heartbeat('n1', old, {
      engines: [{ engineId: 'x', state: EngineState.ENGINE_STATE_READY } as never],
      sentAtMs: 0,
      draining: true,
    });
    registry.detach('n1', old, 'late end of the old stream');
    expect(registry.get('n1')).toMatchObject({ engines: [], draining: false, conn: { t: 'connected' } });
  });

  it('sends directives only to connected workers', () => {
    const { registry } = setup();
    const s = session();
    const id = registry.attach(inv('n1'), 'p1', s);
    expect(registry.send('n1', { msg: { $case: 'drain', value: {} } })).toBe(true);
    registry.detach('n1', id, 'gone');
    expect(registry.send('n1', { msg: { $case: 'drain', value: {} } })).toBe(false);
    expect(registry.send('nobody', { msg: { $case: 'drain', value: {} } })).toBe(false);
    expect(s.sent).toHaveLength(1);
  });
});

describe('inventoryErrors', () => {
  it('accepts a complete inventory', () => {
    expect(inventoryErrors(inv('n1'))).toEqual([]);
  });
  it('lists every missing field with its path', () => {
    expect(
      inventoryErrors(
        inv('', { nodeName: '', address: 'nowhere', gpus: { count: 0, type: '', memoryBytes: 0 } }),
      ),
    ).toEqual([
      { path: 'hello.inventory.worker_id', message: 'must not be empty' },
      { path: 'hello.inventory.node_name', message: 'must not be empty' },
      { path: 'hello.inventory.address', message: 'must be host:port, got "nowhere"' },
      { path: 'hello.inventory.gpus.count', message: 'must be a positive integer' },
      { path: 'hello.inventory.gpus.type', message: 'must not be empty' },
    ]);
    expect(inventoryErrors(undefined)).toEqual([{ path: 'hello.inventory', message: 'is required' }]);
    expect(inventoryErrors(inv('n1', { gpus: undefined }))).toEqual([
      { path: 'hello.inventory.gpus', message: 'is required' },
    ]);
  });
});
