import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { EngineState } from '../../../../proto/gen/corral/v1/worker.ts';
import { fetchEngineClient } from '../../../../worker/engine/engine-client.ts';
import { pickFreePort } from '../../../../worker/engine/free-port.ts';
import { DEFAULT_RESTART_POLICY } from '../../../../worker/engine/restart-policy.ts';
import { nodeSpawner } from '../../../../worker/engine/spawner.ts';
import { EngineSupervisor, type SupervisorConfig } from '../../../../worker/engine/supervisor.ts';
import { descendantProcesses } from '../../../helpers/leaks.ts';

const FIXTURES = join(import.meta.dirname, '../../../fixtures/worker');
const FAKE = join(FIXTURES, 'fake-engine.mjs');

const running: EngineSupervisor[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('test over', 200)));
});

function supervise(
  env: Record<string, string>,
  config: Partial<SupervisorConfig> = {},
  command = FAKE,
  headless = false,
  groupMember = false,
) {
  const changes: string[] = [];
  const s = new EngineSupervisor(
    { engineId: 'e1', model: 'fake-model', args: ['fake-model'], env, gpus: 1, headless, groupMember },
    {
      command: { command, prefixArgs: ['serve'] },
      engineHost: '127.0.0.1',
      startTimeoutMs: 20_000,
      healthPollMs: 50,
      restart: { ...DEFAULT_RESTART_POLICY, initialDelayMs: 100, maxRestarts: 3 },
      stopGraceMs: 2000,
      logTailLines: 20,
      env: {},
      unhealthyThreshold: 3,
      ...config,
    },
    {
      spawner: nodeSpawner,
      http: fetchEngineClient(),
      clock: systemClock,
      random: () => 0.5,
      pickPort: pickFreePort,
      log: silentLogger,
      onChange: (x) => changes.push(x.state.t),
    },
  );
  running.push(s);
  s.start();
  return { s, changes };
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('EngineSupervisor with real processes', () => {
  it('starts an engine, reports READY once /health is 200, reads its metrics, and stops it', async () => {
    const { s, changes } = supervise({});
    await waitFor('ready', () => s.state.t === 'ready');
    const status = s.status();
    expect(status.state).toBe(EngineState.ENGINE_STATE_READY);
    expect(status.httpAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    await s.scrape(2000);
    expect(s.status().kvCacheUsage).toBe(0.25);
    await waitFor('max_model_len', () => s.status().maxModelLen === 4096);
    expect(s.logTail().join('\n')).toContain('Application startup complete');
    await s.stop('test', 2000);
    expect(s.state.t).toBe('stopped');
    expect(changes).toEqual(['starting', 'ready', 'stopping', 'stopped']);
    expect(descendantProcesses()).toEqual([]);
  });

  it('reads the pre-V1 metric names too', async () => {
    const { s } = supervise({ FAKE_METRICS: 'old' });
    await waitFor('ready', () => s.state.t === 'ready');
    await s.scrape(2000);
    expect(s.status().kvCacheUsage).toBe(0.25);
  });

  it('reports an exit with its code and log tail, restarts with backoff, and gives up after the budget', async () => {
    const { s, changes } = supervise({ FAKE_MODE: 'exit', FAKE_EXIT_CODE: '3', FAKE_EXIT_AFTER_MS: '50' });
    await waitFor('exited', () => s.state.t === 'exited');
    const first = s.status().lastExit;
    expect(first?.code).toBe(3);
    expect(first?.signal).toBe('');
    expect(first?.logTail.join('\n')).toContain('RuntimeError: Engine core initialization failed');
    await waitFor('failed', () => s.state.t === 'failed');
    expect(s.status().restarts).toBe(3);
    expect(s.status().detail).toContain('exited with code 3');
    expect(s.status().detail).toContain('restart budget spent');
    expect(changes.filter((c) => c === 'exited')).toHaveLength(3);
  });

  it('kills an engine that never becomes healthy and fails naming the timeout and the log tail', async () => {
    const { s } = supervise({ FAKE_MODE: 'never-healthy' }, { startTimeoutMs: 1000 });
    await waitFor('failed', () => s.state.t === 'failed');
    const detail = s.status().detail;
    expect(detail).toContain('not healthy within 1000 ms');
    expect(detail).toContain('GET /health answered 503');
    expect(detail).toContain('mode never-healthy');
    await waitFor('no engine process', () => descendantProcesses().length === 0, 5000);
  });

  it('escalates to SIGKILL when the engine ignores SIGTERM', async () => {
    const { s } = supervise({ FAKE_IGNORE_SIGTERM: '1' });
    await waitFor('ready', () => s.state.t === 'ready');
    await s.stop('test', 300);
    expect(s.state.t).toBe('stopped');
    expect(s.status().lastExit?.signal).toBe('SIGKILL');
    expect(s.logTail().join('\n')).toContain('ignoring SIGTERM');
  });

  it('stops the whole process group of a launcher that does not exec its engine', async () => {
    const { s } = supervise({}, {}, join(FIXTURES, 'fake-engine-launcher.sh'));
    await waitFor('ready', () => s.state.t === 'ready');
    expect(descendantProcesses().length).toBeGreaterThanOrEqual(2);
    await s.stop('test', 2000);
    await waitFor('no engine process', () => descendantProcesses().length === 0, 5000);
  });

  it('restarts an engine killed from outside and becomes READY again', async () => {
    const { s } = supervise({});
    await waitFor('ready', () => s.state.t === 'ready');
    const pid = s.state.t === 'ready' ? s.state.pid : 0;
    process.kill(pid, 'SIGKILL');
    await waitFor('exited', () => s.state.t === 'exited');
    expect(s.status().lastExit).toMatchObject({ code: -1, signal: 'SIGKILL' });
    await waitFor('ready again', () => s.state.t === 'ready' && s.state.pid !== pid);
    expect(s.status().restarts).toBe(1);
  });

  it('restarts a ready engine whose /health keeps answering 503 (dead engine core, live process)', async () => {
    const { s, changes } = supervise({ FAKE_DIE_AFTER_MS: '1500' });
    await waitFor('ready', () => s.state.t === 'ready');
    // nothing happens while /health is 200
    await s.scrape(2000);
    expect(s.state.t).toBe('ready');
    while (s.state.t === 'ready') {
      await s.scrape(2000);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor('exited', () => s.status().lastExit !== undefined);
    expect(s.status().lastExit?.logTail.join('\n')).toContain('GET /health answered 503 3 times in a row');
    await waitFor('ready again', () => s.state.t === 'ready' && s.status().restarts === 1);
    // after the exit: the restart enters starting, then reports again once the new process is spawned
    expect(changes).toEqual(['starting', 'ready', 'exited', 'starting', 'starting', 'ready']);
  });

  it('runs a headless rank without a port and counts it ready once spawned', async () => {
    const { s } = supervise({ FAKE_MODE: 'never-healthy' }, {}, FAKE, true);
    await waitFor('ready', () => s.state.t === 'ready');
    expect(s.httpAddress).toBe('');
    expect(s.status().httpAddress).toBe('');
    await waitFor('spawn line', () => s.logTail().length > 0);
    await waitFor('args line', () => s.logTail().length > 1);
    expect(s.logTail()[1]).toMatch(/args serve fake-model --host 127\.0\.0\.1$/);
    expect(s.logTail()[0]).not.toContain('--port');
  });

  it('does not restart a rank of a multi-node group: its exit is reported and final', async () => {
    const { s, changes } = supervise({}, {}, FAKE, false, true);
    await waitFor('ready', () => s.state.t === 'ready');
    const pid = s.state.t === 'ready' ? s.state.pid : 0;
    process.kill(pid, 'SIGKILL');
    await waitFor('failed', () => s.state.t === 'failed');
    expect(s.status().lastExit).toMatchObject({ code: -1, signal: 'SIGKILL' });
    expect(s.status().detail).toBe(
      'killed by SIGKILL; a rank of a multi-node group is not restarted alone (the controller rebuilds the group)',
    );
    expect(s.status().restarts).toBe(0);
    expect(changes).toEqual(['starting', 'ready', 'failed']);
  });
});
