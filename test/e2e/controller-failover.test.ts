/**
 * Two controller replicas in the local cluster (real processes on loopback: Redis, 2 controllers, 2 workers, 2
 * simulated 8B engines). Every worker registers with both replicas, so either routes requests; one replica holds
 * the group reconciler's Redis lease. The leader is SIGKILLed: the other takes the lease over within a few seconds
 * (lease 3 s, attempts every 1 s), adopts the groups the workers report instead of relaunching them, and keeps
 * serving; a replacement controller started later on the dead one's ports joins as a follower.
 */
import { describe, expect, it } from 'vitest';
import { inferenceClient } from '../../cli/clients.ts';
import type { ClusterStatus } from '../../proto/gen/corral/v1/control.ts';
import { completionTokens, countedRequest } from '../helpers/grpc-stream.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';
import { until } from '../helpers/until.ts';

const MODEL = 'llama-3.1-8b-instruct';
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 2
    gpusPerReplica: 1
    maxModelLen: 4096
    defaultMaxTokens: 16
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '5']
`;

const e2e = useLocalCluster('failover', {
  config: CONFIG,
  controllers: 2,
  workers: h100Nodes(2),
});

/** Generates through controller replica i; resolves with the completion tokens or the error status. */
async function generate(i: number, requestId: string): Promise<number | string> {
  const client = inferenceClient(e2e.cluster.replica(i).grpc);
  try {
    const o = await completionTokens(client, countedRequest(MODEL, requestId, 8), 30_000);
    return o.ok ? o.tokens : `${o.code}: ${o.details}`;
  } finally {
    client.close();
  }
}

const leads = (s: ClusterStatus) => s.replicaId !== '' && s.leaderId === s.replicaId;
const engineIds = (s: ClusterStatus) =>
  s.workers.flatMap((w) => w.engines.map((e) => `${e.engineId}@${e.stateSinceMs}`)).sort();
const connectedWorkers = (s: ClusterStatus) =>
  s.workers
    .filter((w) => w.connected)
    .map((w) => w.inventory?.workerId)
    .sort();

describe('two controller replicas', () => {
  it('both know every worker and serve requests; exactly one leads, and both name it', async () => {
    const [a, b] = [await e2e.cluster.status(5000, 0), await e2e.cluster.status(5000, 1)];
    expect(connectedWorkers(a)).toEqual(['node-1', 'node-2']);
    expect(connectedWorkers(b)).toEqual(['node-1', 'node-2']);
    expect([leads(a), leads(b)].filter(Boolean)).toHaveLength(1);
    expect(b.leaderId).toBe(a.leaderId);
    expect(b.leaderEpoch).toBe(a.leaderEpoch);
    expect(a.leaderEpoch).toBeGreaterThan(0);
    // the follower shows the groups as the workers report them
    expect(a.groups.map((g) => g.state)).toEqual(['ready', 'ready']);
    expect(b.groups.map((g) => g.state)).toEqual(['ready', 'ready']);
    const results = await Promise.all([0, 1, 0, 1].map((i, n) => generate(i, `both-${n}`)));
    expect(results).toEqual([8, 8, 8, 8]);
  });

  it('SIGKILL the leader: the other leads within seconds, keeps the groups (no relaunch) and serves', async () => {
    const statuses = [await e2e.cluster.status(5000, 0), await e2e.cluster.status(5000, 1)];
    const leader = statuses.findIndex(leads);
    const survivor = 1 - leader;
    const before = statuses[leader] as ClusterStatus;
    e2e.cluster.replica(leader).process.kill('SIGKILL');
    const killedAt = Date.now();
    const after = await until('the survivor leads', async () => {
      const s = await e2e.cluster.status(2000, survivor);
      return leads(s) ? s : undefined;
    });
    const takeoverMs = Date.now() - killedAt;
    console.info(
      `controller takeover: ${takeoverMs} ms from SIGKILL to the survivor leading (lease 3000 ms)`,
    );
    expect(after.leaderEpoch).toBeGreaterThan(before.leaderEpoch);
    // adopted, not relaunched: the same engines, in the same state since before the kill
    expect(after.groups.map((g) => g.state)).toEqual(['ready', 'ready']);
    expect(engineIds(after)).toEqual(engineIds(before));
    const results = await Promise.all([0, 1, 2, 3].map((n) => generate(survivor, `after-kill-${n}`)));
    expect(results).toEqual([8, 8, 8, 8]);
    // a heartbeat later, still the same engines (no stop or launch followed the adoption)
    await new Promise((r) => setTimeout(r, 1000));
    expect(engineIds(await e2e.cluster.status(5000, survivor))).toEqual(engineIds(before));
  });

  it('a replacement controller on the dead one’s ports joins as a follower and serves too', async () => {
    const dead = e2e.cluster.controllers.findIndex((c) => c.process.hasExited);
    const survivor = 1 - dead;
    const leading = await e2e.cluster.status(5000, survivor);
    await e2e.cluster.startController(dead);
    const joined = await until('the replacement knows both workers', async () => {
      const s = await e2e.cluster.status(2000, dead);
      return connectedWorkers(s).length === 2 && s.leaderId !== '' ? s : undefined;
    });
    expect(leads(joined)).toBe(false);
    expect(joined.leaderId).toBe(leading.leaderId);
    expect(joined.leaderEpoch).toBe(leading.leaderEpoch);
    const still = await e2e.cluster.status(5000, survivor);
    expect(leads(still)).toBe(true);
    expect(still.leaderEpoch).toBe(leading.leaderEpoch);
    expect(engineIds(still)).toEqual(engineIds(leading));
    const results = await Promise.all([dead, survivor].map((i, n) => generate(i, `rejoined-${n}`)));
    expect(results).toEqual([8, 8]);
  });

  it('a leader frozen past its lease (SIGSTOP) is replaced, and on waking it follows instead of fighting', async () => {
    const statuses = [await e2e.cluster.status(5000, 0), await e2e.cluster.status(5000, 1)];
    const frozen = statuses.findIndex(leads);
    const other = 1 - frozen;
    const before = statuses[frozen] as ClusterStatus;
    e2e.cluster.replica(frozen).process.kill('SIGSTOP');
    try {
      await until('the other replica leads', async () => {
        const s = await e2e.cluster.status(2000, other);
        return leads(s) ? s : undefined;
      });
    } finally {
      e2e.cluster.replica(frozen).process.kill('SIGCONT');
    }
    // On waking, its own clock says its term is over: it must not act as leader, and learns who leads now.
    const woke = await until('the woken replica follows the new leader', async () => {
      const s = await e2e.cluster.status(2000, frozen);
      return s.leaderId !== before.leaderId && connectedWorkers(s).length === 2 ? s : undefined;
    });
    const now = await e2e.cluster.status(5000, other);
    expect(leads(woke)).toBe(false);
    expect(woke.leaderId).toBe(now.replicaId);
    expect(now.leaderEpoch).toBeGreaterThan(before.leaderEpoch);
    expect(engineIds(now)).toEqual(engineIds(before));
    const results = await Promise.all([frozen, other].map((i, n) => generate(i, `after-freeze-${n}`)));
    expect(results).toEqual([8, 8]);
  });
});
