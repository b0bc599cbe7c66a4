import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { Launcher } from '../../../../controller/launcher/launcher.ts';
import { WorkerRegistry } from '../../../../controller/registry/worker-registry.ts';
import type { ControllerMessage } from '../../../../proto/gen/corral/v1/registry.ts';
import { EngineState, type EngineStatus, type Inventory } from '../../../../proto/gen/corral/v1/worker.ts';

const config = compileControllerConfig({ deployments: [{ name: 'm', model: 'org/m', replicas: 1 }] });
const inventory: Inventory = {
  workerId: 'n1',
  nodeName: 'n1',
  address: '127.0.0.1:1',
  gpus: { count: 8, type: 'h100-80g', memoryBytes: 0 },
  labels: {},
  version: '',
  engineHost: '',
};
const engine = (state: EngineState): EngineStatus =>
  ({ engineId: 'm-n1', state, model: 'org/m' }) as EngineStatus;

function setup() {
  const registry = new WorkerRegistry({ workerTimeoutMs: 3000, clock: new ManualClock(), log: silentLogger });
  const launcher = new Launcher({ deployments: config.deployments, registry, log: silentLogger });
  registry.onEvent(() => launcher.reconcile());
  const sent: ControllerMessage[] = [];
  const attach = () => registry.attach(inventory, 'peer', { send: (m) => sent.push(m), close: () => {} });
  const beat = (session: number, ...engines: EngineStatus[]) =>
    registry.heartbeat('n1', session, { engines, sentAtMs: 0, draining: false });
  const launches = () => sent.filter((m) => m.msg?.$case === 'launch').length;
  return { registry, attach, beat, launches };
}

describe('Launcher', () => {
  it('waits for the first heartbeat before deciding, so a reconnect does not re-launch a running engine', () => {
    const { attach, beat, launches } = setup();
    const s = attach();
    expect(launches()).toBe(0);
    beat(s, engine(EngineState.ENGINE_STATE_READY));
    expect(launches()).toBe(0);
  });

  it('launches once, and a STOPPED report of the replaced engine does not trigger another launch', () => {
    const { attach, beat, launches } = setup();
    const s = attach();
    beat(s, engine(EngineState.ENGINE_STATE_STOPPED));
    expect(launches()).toBe(1);
    beat(s, engine(EngineState.ENGINE_STATE_STOPPING));
    beat(s, engine(EngineState.ENGINE_STATE_STOPPED));
    expect(launches()).toBe(1);
    beat(s, engine(EngineState.ENGINE_STATE_STARTING));
    beat(s, engine(EngineState.ENGINE_STATE_READY));
    expect(launches()).toBe(1);
  });

  it('re-sends on a new stream when the worker no longer runs the engine', () => {
    const { registry, attach, beat, launches } = setup();
    const s1 = attach();
    beat(s1);
    expect(launches()).toBe(1);
    registry.detach('n1', s1, 'stream broke');
    const s2 = attach();
    beat(s2);
    expect(launches()).toBe(2);
  });
});
