import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterSimOptions, runClusterSim } from '../../../../sim/cluster/cluster-sim.ts';
import { PromptThread, PromptThreadError } from '../../../../sim/cluster/prompt-thread.ts';
import { corral, oracle, roundRobin } from '../../../../sim/cluster/routers.ts';
import type { Workload } from '../../../../sim/cluster/workload.ts';
import { chatWorkload, crowdedWorkload, latency, SMALL } from './fixtures.ts';

// Blocks straddling a question and an answer included.
const crowded = crowdedWorkload(20, 47);
const chat = chatWorkload(20);
const base = { groups: 4, shape: SMALL, latency, seed: 1, drainMs: 600_000 };
const byCorral = () => corral({ capacityBlocks: SMALL.numBlocks });

let thread: PromptThread;
beforeAll(async () => {
  thread = await PromptThread.start();
});
afterAll(async () => {
  await thread.close();
});

describe('the prompt thread', () => {
  it('gives the cluster simulator the results it gets building prompts itself, every one', () => {
    const cases: [string, ClusterSimOptions][] = [
      ['shared prefix, corral', { ...base, workload: crowded, router: byCorral }],
      ['shared prefix, oracle', { ...base, workload: crowded, router: oracle }],
      // Requests wait in the queue for room: dispatched out of arrival order, which the thread builds in.
      [
        'shared prefix, bounded',
        { ...base, workload: crowded, router: roundRobin, maxOutstandingPerGroup: 2 },
      ],
      ['multi-turn, corral', { ...base, workload: chat, router: byCorral }],
      // Engines that sample answers (the engine simulator's reading) take no answer hashes: the same results.
      ['multi-turn, full step plans', { ...base, workload: chat, router: byCorral, fullStepPlans: true }],
    ];
    let preemptions = 0;
    for (const [name, options] of cases) {
      const local = runClusterSim(options);
      const threaded = runClusterSim({ ...options, prompts: thread });
      // Every field: dispatch, first-token and finish times, refusals, reasons, hits, steps, preemptions...
      expect(threaded, name).toEqual(local);
      expect(local.prefixHitTokens, name).toBeGreaterThan(0);
      preemptions += local.preemptions;
    }
    expect(preemptions).toBeGreaterThan(0);
  });

  it('surfaces a failure in the thread as a thrown error, and takes the next run', () => {
    // A request whose prompt holds one token more than it says: its results would not fit their place.
    const k = 5;
    const broken: Workload = {
      ...crowded,
      requests: crowded.requests.map((r, i) => (i === k ? { ...r, promptTokens: r.promptTokens - 1 } : r)),
    };
    const run = () => runClusterSim({ ...base, workload: broken, router: byCorral, prompts: thread });
    expect(run).toThrow(PromptThreadError);
    expect(run).toThrow(/the prompt thread failed: RangeError: request 5: its segments hold \d+ tokens/);
    const ok = runClusterSim({ ...base, workload: chat, router: byCorral, prompts: thread });
    expect(ok).toEqual(runClusterSim({ ...base, workload: chat, router: byCorral }));
  });

  it('refuses a run on a thread that has exited', async () => {
    const closed = await PromptThread.start();
    await closed.close();
    expect(() => runClusterSim({ ...base, workload: chat, router: byCorral, prompts: closed })).toThrow(
      /the prompt thread has exited/,
    );
  });

  it('fails a run whose thread stops making progress instead of waiting for ever', async () => {
    const dying = await PromptThread.start({ stallMs: 100 });
    // Terminated before the run is sent, though the simulator (synchronous) cannot hear of it yet.
    const terminated = dying.close();
    expect(() => runClusterSim({ ...base, workload: chat, router: byCorral, prompts: dying })).toThrow(
      /the prompt thread made no progress in 100 ms \(at request 0 of \d+, the simulator waits for 0\)/,
    );
    await terminated;
  });
});
