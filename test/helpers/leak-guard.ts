/**
 * Setup file of the integration and e2e projects: a test file that leaves a process or a listening port
 * behind fails. Checked after the file's own afterAll hooks (vitest runs after-hooks in stack order).
 */
import { afterAll, beforeAll } from 'vitest';
import { listeningPorts, waitForNoLeaks } from './leaks.ts';

let baseline: number[] = [];

beforeAll(() => {
  baseline = listeningPorts();
});

afterAll(async () => {
  const leaks = await waitForNoLeaks(baseline);
  const problems: string[] = [];
  if (leaks.processes.length > 0) problems.push(`processes still running: ${leaks.processes.join(', ')}`);
  if (leaks.listeningPorts.length > 0)
    problems.push(`ports still listening: ${leaks.listeningPorts.join(', ')}`);
  if (problems.length > 0) throw new Error(`test file leaked resources: ${problems.join('; ')}`);
});
