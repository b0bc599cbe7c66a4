/**
 * The chaos run's faults, on a LocalCluster, each one a SIGKILL (no goodbye, no flushed buffers):
 *   worker   the node running a group's leader rank (rank 0) dies with its engine, as when the machine goes;
 *            the group leaves routing and is rebuilt on the spare node; the dead node returns later as a spare
 *   controller  the replica leading the group reconciler dies; the other takes over the lease and, when their
 *            leases run out, its running requests; a replacement starts on the same ports once the other leads
 *   redis    Redis dies, stays down 2 s, and restarts from its AOF
 * Each returns when the cluster is whole again, with what the servers did; how long the clients' streams
 * stalled is measured from the clients' side afterwards (streamStall).
 */
import type { LocalCluster, WorkerSpec } from '../../cli/local-cluster.ts';
import type { ClusterStatus } from '../../proto/gen/corral/v1/control.ts';
import { findDescendants } from '../../test/helpers/processes.ts';

/** How long Redis stays dead: a restart that takes a while, as a rescheduled pod's would (not a blip). */
const REDIS_DOWN_MS = 2000;

export type FaultKind = 'worker' | 'controller' | 'redis';

export interface FaultRecord {
  what: string;
  /** ms since the run's start. */
  at: number;
  /** What the servers did to recover, with its timings. */
  detail: string;
}

/**
 * A fault just injected: what and when; `recovered` once the cluster serves as before (the group rebuilt, the
 * other controller leading, Redis answering), with how; `restored` once the dead process is back.
 */
export interface InjectedFault {
  what: string;
  at: number;
  recovered: Promise<FaultRecord>;
  restored: Promise<void>;
}

export interface FaultContext {
  cluster: LocalCluster;
  deployment: string;
  workers: readonly WorkerSpec[];
  /** ms since the run's start. */
  now: () => number;
  progress: (line: string) => void;
}

/** Resolves right after the kill, so the run can pace its arrivals on it; recovery goes on in the background. */
export async function injectFault(kind: FaultKind, c: FaultContext): Promise<InjectedFault> {
  switch (kind) {
    case 'worker':
      return killLeaderNode(c);
    case 'controller':
      return killLeadingController(c);
    case 'redis':
      return killRedis(c);
  }
}

function settle(
  what: string,
  at: number,
  recover: () => Promise<string>,
  restore: () => Promise<void>,
): InjectedFault {
  const recovered = recover().then((detail) => ({ what, at, detail }));
  return { what, at, recovered, restored: recovered.then(restore) };
}

async function killLeaderNode(c: FaultContext): Promise<InjectedFault> {
  const s = await c.cluster.status();
  const group = s.groups.find((g) => g.deployment === c.deployment && g.state === 'ready');
  const nodeName = group?.ranks.find((r) => r.rank === 0)?.workerId;
  const spec = c.workers.find((w) => w.nodeName === nodeName);
  if (!group || !spec) throw new Error(`no ready group of ${c.deployment} with a rank 0 to kill`);
  const worker = c.cluster.worker(spec.nodeName);
  const engines = findDescendants(worker.pid ?? 0, 'sim/engine/main.ts');
  const at = c.now();
  worker.kill('SIGKILL');
  for (const pid of engines) process.kill(pid, 'SIGKILL');
  c.progress(`fault: SIGKILL ${spec.nodeName} (rank 0 of ${group.id}) and its engine`);
  return settle(
    `SIGKILL worker ${spec.nodeName} (rank 0 of ${group.id})`,
    at,
    async () => {
      // Out of routing first (the worker's heartbeats stop), then rebuilt on the spare node.
      let outAt: number | undefined;
      await until('the group out of routing, then rebuilt on the spare node', async () => {
        const d = deploymentOf(await c.cluster.status(), c.deployment);
        if (d && d.readyReplicas < d.desiredReplicas) outAt ??= c.now();
        return outAt !== undefined && d && d.readyReplicas >= d.desiredReplicas ? true : undefined;
      });
      c.progress(`recovered: ${group.id} rebuilt`);
      return `out of routing after ${seconds(outAt, at)} s, rebuilt on the spare after ${seconds(c.now(), at)} s`;
    },
    async () => {
      await worker.exited;
      await restartUntilUp(spec.nodeName, () => c.cluster.startWorker(spec), c);
      c.progress(`restored: ${spec.nodeName} back as a spare`);
    },
  );
}

async function killLeadingController(c: FaultContext): Promise<InjectedFault> {
  const statuses = await Promise.all(c.cluster.controllers.map((_, i) => c.cluster.status(5000, i)));
  const leader = statuses.findIndex((s) => s.replicaId !== '' && s.leaderId === s.replicaId);
  if (leader < 0) throw new Error('no controller replica leads');
  const survivor = leader === 0 ? 1 : 0;
  const replica = c.cluster.replica(leader);
  const at = c.now();
  replica.process.kill('SIGKILL');
  c.progress(`fault: SIGKILL ${replica.name} (the reconciler's leader)`);
  const what = `SIGKILL ${replica.name} (reconciler leader; holds leases of the requests it dispatched)`;
  return settle(
    what,
    at,
    async () => {
      await until('the survivor leads', async () => {
        const s = await c.cluster.status(2000, survivor);
        return s.leaderId === s.replicaId ? true : undefined;
      });
      c.progress(`recovered: the other controller leads`);
      return `the other controller led after ${seconds(c.now(), at)} s`;
    },
    async () => {
      await replica.process.exited;
      // Its replacement starts at once, as a restarted pod would; the dead replica's leases still lapse on their
      // own (5 s by default), and either live replica may take those requests over.
      await restartUntilUp(replica.name, () => c.cluster.startController(leader), c);
      c.progress(`restored: ${replica.name} replaced on its ports`);
    },
  );
}

async function killRedis(c: FaultContext): Promise<InjectedFault> {
  const at = c.now();
  c.progress(`fault: SIGKILL redis, restart from its AOF ${REDIS_DOWN_MS} ms later`);
  const restarted = c.cluster.redis.restart({ kill: true, downMs: REDIS_DOWN_MS });
  const what = `SIGKILL redis, restarted from its AOF (appendfsync always) after ${REDIS_DOWN_MS / 1000} s down`;
  return settle(
    what,
    at,
    async () => {
      await restarted;
      c.progress('recovered: redis answers again');
      return `redis answered again after ${seconds(c.now(), at)} s`;
    },
    async () => {},
  );
}

/**
 * Starts a replacement as a supervisor (Kubernetes) would: a process that exits while starting (a controller
 * refuses to start without Redis, which a later fault may have taken away) is started again, 2 s apart.
 */
async function restartUntilUp(name: string, start: () => Promise<unknown>, c: FaultContext): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      return;
    } catch (e) {
      if (attempt >= 10) throw e;
      c.progress(`${name} exited while starting (${(e as Error).message.split('\n')[0]}); starting it again`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function deploymentOf(s: ClusterStatus, name: string) {
  return s.deployments.find((d) => d.name === name);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function seconds(t: number | undefined, from: number): string {
  return t === undefined ? '?' : ((t - from) / 1000).toFixed(1);
}
