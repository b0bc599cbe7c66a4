/**
 * No orphan engines: a worker told twice to stop (the second signal means "now") kills its engines' process
 * groups before exiting, even while it is still waiting on an engine that ignores SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { descendantProcesses } from '../../../helpers/leaks.ts';
import { FAKE_ENGINE, FakeRegistry, WorkerProcess, waitFor } from './worker-harness.ts';

const registry = new FakeRegistry();
let worker: WorkerProcess;

beforeAll(async () => {
  await registry.start();
  worker = new WorkerProcess([
    '--controller',
    `127.0.0.1:${registry.port}`,
    '--gpus',
    '1',
    '--gpu-type',
    'l4-24g',
    '--engine-command',
    FAKE_ENGINE,
    '--engine-stop-grace-ms',
    '600000',
  ]);
  await worker.listening();
});

afterAll(async () => {
  await worker?.stop(2000);
  await registry.close();
});

describe('worker exit', () => {
  it('a second SIGTERM kills engines that ignore the first and exits 1, leaving no process behind', async () => {
    await waitFor('hello', () => registry.hellos[0]);
    expect(registry.hellos[0]?.inventory?.gpus).toEqual({
      count: 1,
      type: 'l4-24g',
      memoryBytes: 24 * 1024 ** 3,
    });
    registry.send({
      msg: {
        $case: 'launch',
        value: {
          engineId: 'e1',
          model: 'm',
          args: ['m'],
          env: { FAKE_IGNORE_SIGTERM: '1' },
          gpus: 1,
          headless: false,
        },
      },
    });
    await waitFor('ready', () => registry.engine('e1')?.state === EngineState.ENGINE_STATE_READY);
    const enginePid = Number(/pid (\d+)/.exec(registry.engine('e1')?.detail ?? '')?.[1]);
    expect(descendantProcesses().map((p) => Number(p.split(' ')[0]))).toContain(enginePid);
    // An orphan is re-parented to init and leaves our process tree, so ask the kernel about the pid itself.
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(enginePid)).toBe(true);

    worker.child.kill('SIGTERM');
    await waitFor('stopping', () => registry.engine('e1')?.state === EngineState.ENGINE_STATE_STOPPING);
    expect(alive(enginePid)).toBe(true); // the worker is still waiting out the (long) grace period
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 1, signal: null });
    await waitFor('engine gone', () => !alive(enginePid), 5000);
  });
});
