import { describe, expect, it } from 'vitest';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { deploymentView, explainReadiness } from '../../../../controller/deployments/replica-view.ts';
import type { WorkerRecord } from '../../../../controller/registry/worker-registry.ts';
import { EngineState, type EngineStatus } from '../../../../proto/gen/corral/v1/worker.ts';

const d = compileControllerConfig({
  deployments: [{ name: 'm', model: 'org/m', replicas: 3, gpusPerReplica: 2 }],
}).deployments[0]!;

function worker(
  id: string,
  engine: Partial<EngineStatus> | undefined,
  over: Partial<WorkerRecord> = {},
): WorkerRecord {
  return {
    workerId: id,
    inventory: {
      workerId: id,
      nodeName: id,
      address: `${id}:1`,
      gpus: undefined,
      labels: {},
      version: '',
      engineHost: '',
    },
    engines: engine
      ? [
          {
            engineId: `m-${id}`,
            state: EngineState.ENGINE_STATE_READY,
            detail: '',
            ...engine,
          } as EngineStatus,
        ]
      : [],
    lastHeartbeatMs: 0,
    draining: false,
    reported: true,
    conn: {
      t: 'connected',
      sinceMs: 0,
      session: { send: () => {}, close: () => {} },
      sessionId: 1,
      peer: 'p',
    },
    ...over,
  };
}

describe('deploymentView', () => {
  it('routes only to READY engines on connected, non-draining workers, and says why not', () => {
    const v = deploymentView(
      d,
      [
        worker('a', {}),
        worker('b', {}, { draining: true }),
        worker('c', {}, { conn: { t: 'lost', sinceMs: 1000, reason: 'stream ended' } }),
        worker('d', { state: EngineState.ENGINE_STATE_STARTING, detail: 'loading weights' }),
        worker('e', undefined),
        worker('f', { engineId: 'other-f' }),
      ],
      3500,
    );
    expect(v.replicas.map((r) => [r.engineId, r.routable, r.placed, r.why])).toEqual([
      ['m-a', true, true, ''],
      ['m-b', false, true, 'worker b is draining'],
      ['m-c', false, false, 'worker c lost 2.5 s ago: stream ended'],
      ['m-d', false, true, 'm-d starting (loading weights)'],
    ]);
    expect(v.ready).toBe(1);
    expect(explainReadiness(v)).toBe(
      '1 of 3 ready: worker b is draining; worker c lost 2.5 s ago: stream ended; m-d starting (loading weights)',
    );
  });

  it('counts replicas that are nowhere as not placed', () => {
    const v = deploymentView(
      d,
      [
        worker('a', {
          state: EngineState.ENGINE_STATE_FAILED,
          lastExit: { code: 1, signal: '', logTail: [], atMs: 0 },
        }),
      ],
      0,
    );
    expect(explainReadiness(v)).toBe(
      '0 of 3 ready: m-a failed, last exit code 1; 3 not placed (needs a connected worker with 2 free GPUs where it has not failed)',
    );
  });
});
