/**
 * A 2-rank simulated group (--nnodes 2): rank 0 serves only after rank 1 (headless) joined over TCP; killing
 * rank 1 makes rank 0 exit non-zero with an NCCL-like error.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, SimProcess } from './sim-process.ts';

const started: SimProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

function rank(rankNo: number, masterPort: number, port: number): SimProcess {
  const args = [
    'serve',
    'meta-llama/Llama-3.1-405B-Instruct',
    '--tensor-parallel-size',
    '8',
    '--pipeline-parallel-size',
    '2',
  ];
  args.push(
    '--nnodes',
    '2',
    '--node-rank',
    String(rankNo),
    '--master-addr',
    '127.0.0.1',
    '--master-port',
    String(masterPort),
  );
  args.push('--host', '127.0.0.1', '--port', String(port), '--sim-startup-ms', '100');
  if (rankNo > 0) args.push('--headless');
  const p = new SimProcess(args);
  started.push(p);
  return p;
}

describe('multi-node group roles', () => {
  it('rank 0 opens its API only after rank 1 joined, and exits non-zero when rank 1 dies', async () => {
    const masterPort = await freePort();
    const port = await freePort();
    const r0 = rank(0, masterPort, port);
    await r0.waitForOutput('GPU KV cache size');
    await r0.waitForOutput('waiting for 1 rank(s)');
    // Start-up is over but the group is incomplete: the port stays closed.
    const before = await fetch(`http://127.0.0.1:${port}/health`).then(
      () => 'open',
      () => 'closed',
    );
    expect(before).toBe('closed');
    expect(r0.stdout).not.toContain('Application startup complete.');

    const r1 = rank(1, masterPort, port);
    await r0.waitForOutput('Application startup complete.');
    await r1.waitForOutput('Headless rank 1: serving no HTTP API.');
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    const t0 = Date.now();
    r1.child.kill('SIGKILL');
    const code = await r0.exited;
    console.log(`rank 0 exited ${Date.now() - t0} ms after rank 1 was killed`);
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(r0.stderr).toContain('NCCL error');
  });

  it('a headless rank exits non-zero when rank 0 dies', async () => {
    const masterPort = await freePort();
    const r0 = rank(0, masterPort, await freePort());
    const r1 = rank(1, masterPort, 1);
    await r1.waitForOutput('all ranks joined');
    r0.child.kill('SIGKILL');
    expect(await r1.exited).toBe(1);
    expect(r1.stderr).toContain('NCCL error');
  });
});
