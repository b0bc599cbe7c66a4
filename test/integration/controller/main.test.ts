/**
 * controller/main.ts as a process: a bad config or tenant file exits 1 with every problem; a good one listens
 * and exits 0 on SIGTERM; without tenants it warns that the API is open, with them it needs a key. Started
 * while Redis is down it waits (health NOT_SERVING on its port) and serves once Redis answers; a bad tenant
 * file fails the start before that wait.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor, type ServiceError, status } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, describe, expect, it } from 'vitest';
import { controlClient, fetchStatus } from '../../../cli/clients.ts';
import { REPO_ROOT } from '../../../cli/local-cluster.ts';
import { startRedisServer } from '../../../cli/redis-server.ts';
import { CorralClient } from '../../../client/corral-client.ts';
import { sha256Hex } from '../../../controller/tenancy/tenant-directory.ts';
import { useRedis } from '../../helpers/use-redis.ts';

const dir = mkdtempSync(join(tmpdir(), 'corral-controller-main-'));
const redis = useRedis();
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

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

/** The `listening` log line's addresses, once the process prints it. */
function listening(p: ReturnType<typeof run>): Promise<{ grpc: string }> {
  return new Promise<{ grpc: string }>((resolve, reject) => {
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
}

/** The first JSON log line with this msg, once the process prints it. */
function logged(p: ReturnType<typeof run>, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${msg} line: ${p.stderr()}`)), 30_000);
    const look = () => {
      for (const l of p.stderr().split('\n')) {
        if (!l.startsWith('{')) continue;
        const j = JSON.parse(l) as Record<string, unknown>;
        if (j.msg !== msg) continue;
        clearTimeout(timer);
        p.child.stderr.off('data', look);
        resolve(j);
        return;
      }
    };
    p.child.stderr.on('data', look);
    look();
  });
}

async function health(address: string): Promise<string> {
  const Health = makeGenericClientConstructor(healthService, 'Health');
  const client = new Health(address, credentials.createInsecure());
  try {
    return await new Promise<string>((resolve, reject) =>
      client.check?.({ service: '' }, (e: ServiceError | null, r: { status: string }) =>
        e ? reject(e) : resolve(r.status),
      ),
    );
  } finally {
    client.close();
  }
}

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('controller/main.ts with Redis down at start', () => {
  it('waits for Redis with health NOT_SERVING on its port, then serves there', async () => {
    const port = await unusedPort();
    const p = run(GOOD_CONFIG, ['--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${port}`], 'warn');
    const redisDir = mkdtempSync(join(tmpdir(), 'corral-late-redis-'));
    let late: Awaited<ReturnType<typeof startRedisServer>> | undefined;
    try {
      const waiting = await logged(
        p,
        'redis unreachable at start; serving health NOT_SERVING until it answers',
      );
      const address = waiting.grpc as string;
      expect(await health(address)).toBe('NOT_SERVING');
      late = await startRedisServer({ dir: redisDir, port });
      const line = await listening(p);
      expect(line.grpc).toBe(address);
      expect(await health(address)).toBe('SERVING');
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await late?.stop();
      rmSync(redisDir, { recursive: true, force: true });
    }
  });

  it('gives up after --redis-wait-ms and exits 1', async () => {
    const port = await unusedPort();
    const p = run(GOOD_CONFIG, [
      ...['--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${port}`],
      ...['--redis-wait-ms', '0'],
    ]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`redis at redis://127.0.0.1:${port} did not answer within 0 ms`);
  });
});

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
      ['--listen', '127.0.0.1:0', '--redis', redis.url],
      'warn', // the listening line is printed even when info lines are not
    );
    try {
      const line = await listening(p);
      expect(line.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(line.grpc).not.toBe('127.0.0.1:1');
      const client = controlClient(line.grpc);
      try {
        const s = await fetchStatus(client);
        expect(s.deployments).toEqual([
          {
            name: 'a',
            model: 'm',
            readyReplicas: 0,
            desiredReplicas: 3,
            outstandingRequests: 0,
            pickReasons: {},
          },
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

  it('warns that the API is open when no tenants are configured', async () => {
    const p = run(GOOD_CONFIG, ['--listen', '127.0.0.1:0', '--redis', redis.url], 'warn');
    try {
      await listening(p);
      expect(p.stderr()).toContain('no tenants configured (--tenants FILE): the API is OPEN');
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });
});

const GOOD_CONFIG = 'deployments:\n  - name: a\n    model: m\n';
const KEY = 'sk-main-test-0123456789';

describe('controller/main.ts --tenants', () => {
  function tenantsFile(text: string): string {
    const file = join(dir, `t-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    return file;
  }

  it('exits 1 when tenants come without the Redis their budgets live in', async () => {
    const file = tenantsFile(`tenants:\n  - id: a\n    keySha256: [${sha256Hex(KEY)}]\n`);
    const p = run(GOOD_CONFIG, ['--tenants', file]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain('--tenants is invalid:\n  redis: tenant budgets are kept in Redis');
  });

  it('exits 1 listing every problem of a bad tenant file', async () => {
    const file = tenantsFile('tenants:\n  - id: a\n    weight: 0\n    keySha256: [nothex]\n');
    const p = run(GOOD_CONFIG, ['--tenants', file, '--redis', redis.url]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`tenant file ${file} is invalid:`);
    expect(p.stderr()).toContain('  tenants[0].weight: must be > 0');
    expect(p.stderr()).toContain('  tenants[0].keySha256[0]: must be 64 hex digits (SHA-256)');
  });

  it('checks the tenant file before waiting for Redis: a bad one exits 1 at once, Redis down or not', async () => {
    const port = await unusedPort();
    const down = ['--listen', '127.0.0.1:0', '--redis', `redis://127.0.0.1:${port}`];
    const bad = tenantsFile('tenants:\n  - id: a\n    classes: [urgent]\n    keySha256: []\n');
    const p = run(GOOD_CONFIG, ['--tenants', bad, ...down], 'warn');
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`tenant file ${bad} is invalid:`);
    expect(p.stderr()).toContain('  tenants[0].classes[0]: must be interactive, standard or batch');
    expect(p.stderr()).not.toContain('redis unreachable');

    const missing = join(dir, 'no-such-tenants.yaml');
    const q = run(GOOD_CONFIG, ['--tenants', missing, ...down], 'warn');
    expect(await q.exited).toBe(1);
    expect(q.stderr()).toContain(`tenant file ${missing} is invalid:\n  (file): cannot read: ENOENT`);
  });

  it('with tenants, ListModels answers a tenant key and refuses a missing or unknown one', async () => {
    const file = tenantsFile(`tenants:\n  - id: a\n    keySha256: [${sha256Hex(KEY)}]\n`);
    const p = run(GOOD_CONFIG, ['--listen', '127.0.0.1:0', '--tenants', file, '--redis', redis.url]);
    try {
      const { grpc } = await listening(p);
      expect(p.stderr()).not.toContain('the API is OPEN');
      const list = async (apiKey?: string) => {
        const client = new CorralClient({ address: grpc, apiKey, maxAttempts: 1 });
        try {
          return await client.listModels();
        } finally {
          client.close();
        }
      };
      expect((await list(KEY)).map((m) => m.id)).toEqual(['a']);
      for (const key of [undefined, 'sk-nobody']) {
        await expect(list(key)).rejects.toMatchObject({
          code: status.UNAUTHENTICATED,
          details: 'invalid or missing API key',
        });
      }
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });
});
