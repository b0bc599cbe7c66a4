/**
 * The worker process with two controller replicas (two fake Registry servers, one given by address, one by a
 * name resolved like a headless Service's): it registers with both and
 * heartbeats to both; a directive from the leader (epoch 2) is obeyed, a later directive from a deposed leader
 * (epoch 1) is ignored and logged, whichever replica it comes from; one replica's stream breaking leaves the
 * other's untouched, and the broken one reconnects on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerMessage } from '../../../../proto/gen/corral/v1/registry.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { FAKE_ENGINE, FakeRegistry, WorkerProcess, waitFor } from './worker-harness.ts';

const a = new FakeRegistry();
const b = new FakeRegistry();
let worker: WorkerProcess;

const launch = (engineId: string, epoch: number): ControllerMessage => ({
  epoch,
  msg: {
    $case: 'launch',
    value: {
      engineId,
      model: 'fake-model',
      args: ['fake-model', '--served-model-name', 'fake'],
      env: {},
      gpus: 1,
      headless: false,
    },
  },
});

const stop = (engineId: string, epoch: number): ControllerMessage => ({
  epoch,
  msg: { $case: 'stop', value: { engineId, graceMs: 0 } },
});

beforeAll(async () => {
  await Promise.all([a.start(), b.start()]);
  worker = new WorkerProcess([
    '--controller',
    // b through a name (dns:///, as a headless Service of controller pods): localhost resolves to 127.0.0.1
    `127.0.0.1:${a.port},dns:///localhost:${b.port}`,
    '--gpus',
    '2',
    '--gpu-type',
    'h100-80g',
    '--node-name',
    'n1',
    '--engine-command',
    FAKE_ENGINE,
  ]);
  await worker.listening();
});

afterAll(async () => {
  await worker?.stop();
  await Promise.all([a.close(), b.close()]);
});

describe('worker with two controller replicas', () => {
  it('registers with both and heartbeats to both', async () => {
    await waitFor('hello on a', () => a.hellos[0]);
    await waitFor('hello on b', () => b.hellos[0]);
    for (const r of [a, b]) r.send({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 60_000 } } });
    expect(a.hellos[0]?.inventory?.workerId).toBe('n1');
    expect(b.hellos[0]?.inventory?.workerId).toBe('n1');
  });

  it("obeys the leader's directive; both replicas see the engine", async () => {
    b.send(launch('e1', 2));
    await waitFor('e1 ready on a', () => a.engine('e1')?.state === EngineState.ENGINE_STATE_READY);
    await waitFor('e1 ready on b', () => b.engine('e1')?.state === EngineState.ENGINE_STATE_READY);
  });

  it('ignores and logs a directive of a lower epoch (a deposed leader), from either replica', async () => {
    a.send(stop('e1', 1));
    a.send(launch('e2', 1));
    b.send(launch('e3', 1));
    await waitFor('3 fencing warnings', () => fenced().length === 3 || undefined);
    expect(fenced().map((l) => [l.directive, l.epoch, l.highestEpoch])).toEqual([
      ['stop', 1, 2],
      ['launch', 1, 2],
      ['launch', 1, 2],
    ]);
    // the leader's next directive still goes through, from whichever replica now leads
    a.send(launch('e4', 2));
    await waitFor('e4 ready', () => b.engine('e4')?.state === EngineState.ENGINE_STATE_READY);
    expect(b.engine('e1')?.state).toBe(EngineState.ENGINE_STATE_READY);
    expect(b.engine('e2')).toBeUndefined();
    expect(b.engine('e3')).toBeUndefined();
  });

  it('a broken stream to one replica leaves the other alone and reconnects', async () => {
    const hellosA = a.hellos.length;
    const hellosB = b.hellos.length;
    a.breakStream();
    await waitFor('a re-registered', () => a.hellos.length > hellosA && a.connected);
    expect(b.hellos.length).toBe(hellosB);
    expect(b.connected).toBe(true);
  });
});

function fenced(): Array<{ directive: string; epoch: number; highestEpoch: number }> {
  return worker.lines
    .filter((l) => l.includes('directive from a deposed leader ignored'))
    .map((l) => JSON.parse(l) as { directive: string; epoch: number; highestEpoch: number });
}
