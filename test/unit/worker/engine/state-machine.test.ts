import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../../common/log.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import {
  canTransition,
  describe as describeState,
  type EngineLifecycle,
  IllegalTransitionError,
  toProtoState,
  transition,
} from '../../../../worker/engine/state-machine.ts';

const starting: EngineLifecycle = { t: 'starting', since: 0, pid: 10, port: 8000, attempt: 1 };
const ready: EngineLifecycle = { t: 'ready', since: 5, pid: 10, port: 8000 };
const exited: EngineLifecycle = {
  t: 'exited',
  since: 7,
  exit: { code: 3, signal: '', logTail: [], atMs: 7 },
  restartAt: 1007,
};

describe('engine state machine', () => {
  it.each([
    ['starting', 'ready', true],
    ['starting', 'exited', true],
    ['ready', 'exited', true],
    ['exited', 'starting', true],
    ['ready', 'stopping', true],
    ['stopping', 'stopped', true],
    ['stopping', 'failed', true],
    ['exited', 'stopped', true],
    ['ready', 'starting', false],
    ['stopped', 'starting', false],
    ['failed', 'starting', false],
    ['stopping', 'ready', false],
    ['exited', 'ready', false],
  ] as const)('%s -> %s allowed: %s', (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
  });

  it('logs OLD -> NEW and returns the new state', () => {
    const lines: string[] = [];
    const log = createLogger('test', { sink: (l) => lines.push(l) });
    expect(transition(starting, ready, log)).toBe(ready);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      msg: 'starting -> ready',
      from: 'starting',
      to: 'ready',
    });
  });

  it('refuses an illegal transition', () => {
    const log = createLogger('test', { sink: () => {} });
    expect(() => transition(ready, starting, log)).toThrow(IllegalTransitionError);
    expect(() => transition(ready, starting, log)).toThrow(
      'illegal engine state transition ready -> starting',
    );
  });

  it('maps every state to the proto enum', () => {
    expect(toProtoState('starting')).toBe(EngineState.ENGINE_STATE_STARTING);
    expect(toProtoState('ready')).toBe(EngineState.ENGINE_STATE_READY);
    expect(toProtoState('exited')).toBe(EngineState.ENGINE_STATE_EXITED);
    expect(toProtoState('stopping')).toBe(EngineState.ENGINE_STATE_STOPPING);
    expect(toProtoState('stopped')).toBe(EngineState.ENGINE_STATE_STOPPED);
    expect(toProtoState('failed')).toBe(EngineState.ENGINE_STATE_FAILED);
  });

  it('describes states for EngineStatus.detail', () => {
    expect(describeState(exited)).toBe('exited with code 3; restart in 1000 ms');
    expect(describeState({ ...ready, port: undefined })).toBe('pid 10 ready (headless)');
  });
});
