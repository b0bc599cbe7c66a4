import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { descendantProcesses, listeningPorts, waitForNoLeaks } from '../helpers/leaks.ts';

// The guard itself must be able to fail, or every "no leak" verdict is meaningless.
describe('leak detection', () => {
  it('sees a child process until it is killed', async () => {
    const child = spawn('sleep', ['30']);
    expect(descendantProcesses().some((p) => p.startsWith(`${child.pid} `))).toBe(true);
    child.kill('SIGKILL');
    const leaks = await waitForNoLeaks([]);
    expect(leaks.processes).toEqual([]);
  });

  it('sees a listening port until it is closed', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    expect(listeningPorts()).toContain(port);
    await new Promise((r) => server.close(r));
    expect(listeningPorts()).not.toContain(port);
  });
});
