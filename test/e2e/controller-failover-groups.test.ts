/**
 * Adoption of a multi-node group across a leader change: 405B BF16 as one group of 2 simulated nodes (TP8 x PP2,
 * a leader rank and a headless follower rank joined over TCP), two controller replicas. The leading controller is
 * SIGKILLed; the other takes the lease and rebuilds its view of the group from the engine ids the workers report
 * (`<deployment>-g<ordinal>.a<attempt>.r<rank>`): same group id, attempt and ranks, no rank relaunched, and
 * requests keep flowing through it.
 */
import { describe, expect, it } from 'vitest';
import { inferenceClient } from '../../cli/clients.ts';
import type { ClusterStatus } from '../../proto/gen/corral/v1/control.ts';
import { completionTokens, countedRequest } from '../helpers/grpc-stream.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';

const MODEL = 'llama-3.1-405b-instruct';
const RACK = 'topology.corral.dev/rack';
// Group masters listen below Linux's ephemeral ports (32768-60999), where another test's connection could hold
// one; each e2e file that forms groups keeps to its own range.
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
groups:
  masterPortBase: ${26000 + (process.pid % 6000)}
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-405B-Instruct
    replicas: 1
    tensorParallel: 8
    pipelineParallel: 2
    gpuType: h100-80g
    topologyKey: ${RACK}
    maxModelLen: 8192
    defaultMaxTokens: 16
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '5']
`;

const specs = h100Nodes(2, { [RACK]: 'rack-1' });

const e2e = useLocalCluster('failover-groups', { config: CONFIG, controllers: 2, workers: specs }, 120_000);

const leads = (s: ClusterStatus) => s.replicaId !== '' && s.leaderId === s.replicaId;
const engines = (s: ClusterStatus) =>
  s.workers
    .flatMap((w) => w.engines.map((e) => `${w.inventory?.workerId}:${e.engineId}@${e.stateSinceMs}`))
    .sort();
const group = (s: ClusterStatus) =>
  s.groups.map((g) => ({ id: g.id, state: g.state, attempt: g.attempt, ranks: g.ranks }));

/** The completion tokens of a request through `address`, or its error's code and details. */
async function generate(address: string, requestId: string): Promise<number | string> {
  const client = inferenceClient(address);
  try {
    const o = await completionTokens(client, countedRequest(MODEL, requestId, 8), 30_000);
    return o.ok ? o.tokens : `${o.code}: ${o.details}`;
  } finally {
    client.close();
  }
}

describe('a 2-node group across a leader change', () => {
  it('the new leader adopts the running group: same id, attempt and ranks, no rank relaunched', async () => {
    const statuses = [await e2e.cluster.status(5000, 0), await e2e.cluster.status(5000, 1)];
    const leader = statuses.findIndex(leads);
    const survivor = 1 - leader;
    const before = statuses[leader] as ClusterStatus;
    expect(group(before)).toEqual([
      {
        id: `${MODEL}-g1`,
        state: 'ready',
        attempt: 1,
        ranks: [
          expect.objectContaining({ rank: 0, engineId: `${MODEL}-g1.a1.r0` }),
          expect.objectContaining({ rank: 1, engineId: `${MODEL}-g1.a1.r1` }),
        ],
      },
    ]);
    e2e.cluster.replica(leader).process.kill('SIGKILL');
    const deadline = Date.now() + 30_000;
    let after: ClusterStatus | undefined;
    while (Date.now() < deadline) {
      const s = await e2e.cluster.status(2000, survivor).catch(() => undefined);
      if (s && leads(s)) {
        after = s;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!after) throw new Error('the survivor never took the lease');
    expect(group(after)).toEqual(group(before));
    expect(engines(after)).toEqual(engines(before));
    expect(await generate(e2e.cluster.replica(survivor).grpc, 'after-kill')).toBe(8);
    await new Promise((r) => setTimeout(r, 1000));
    expect(engines(await e2e.cluster.status(5000, survivor))).toEqual(engines(before));
  });
});
