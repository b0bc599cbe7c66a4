/** controller/main.ts as a process: a bad config exits 1 with every problem; a good one listens and exits 0 on SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { controlClient, fetchStatus } from '../../../cli/clients.ts';
import { REPO_ROOT } from '../../../cli/local-cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'corral-controller-main-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(configText: string, extra: string[] = [], logLevel = 'info') {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, configText);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'controller/main.ts'), '--config', file, ...extra],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CORRAL_LOG_LEVEL: logLevel },
    },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

describe('controller/main.ts', () => {
  it('exits 1 listing every problem of a bad config', async () => {
    const p = run('workerTimeoutMs: 10\ndeployments:\n  - name: a\n    maxModelLen: -1\n');
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain('controller config is invalid:');
    expect(p.stderr()).toContain('  workerTimeoutMs: must be greater than heartbeatIntervalMs (1000)');
    expect(p.stderr()).toContain('  deployments[0].model: is required (a non-empty string)');
    expect(p.stderr()).toContain('  deployments[0].maxModelLen: must be a positive integer');
  });

  it('logs the listening line, serves Control.Status, exits 0 on SIGTERM', async () => {
    const p = run(
      'listen: 127.0.0.1:1\ndeployments:\n  - name: a\n    model: m\n    replicas: 3\n',
      ['--listen', '127.0.0.1:0'],
      'warn', // the listening line is printed even when info lines are not
    );
    try {
      const line = await new Promise<{ grpc: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${p.stderr()}`)), 30_000);
        p.child.stderr.on('data', () => {
          for (const l of p.stderr().split('\n')) {
            if (!l.startsWith('{')) continue;
            const j = JSON.parse(l) as { msg?: string; grpc?: string };
            if (j.msg === 'listening' && j.grpc) {
              clearTimeout(timer);
              resolve({ grpc: j.grpc });
            }
          }
        });
      });
      expect(line.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(line.grpc).not.toBe('127.0.0.1:1');
      const client = controlClient(line.grpc);
      try {
        const s = await fetchStatus(client);
        expect(s.deployments).toEqual([
          { name: 'a', model: 'm', readyReplicas: 0, desiredReplicas: 3, outstandingRequests: 0 },
        ]);
      } finally {
        client.close();
      }
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });
});
