/** Control.Status for `corral status`: every worker the registry knows, every deployment's readiness, every
 * group the reconciler formed (state, ranks on which workers, restarts, last failure), and which controller replica
 * leads the reconciler. Control.Plan: plan-call.ts. */
import type { Metadata, ServerUnaryCall, ServiceError, sendUnaryData } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import { toServiceError } from '../../common/grpc-status.ts';
import type {
  ClusterStatus,
  ControlServer,
  GroupSummary,
  PlanRequest,
  PlanResponse,
  StatusRequest,
} from '../../proto/gen/corral/v1/control.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView } from '../deployments/replica-view.ts';
import type { RequestTable } from '../gateway/request-table.ts';
import { ranksOf } from '../groups/group-state.ts';
import type { GroupRecord } from '../launcher/group-applier.ts';
import type { Leadership } from '../leader/leader-elector.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { planCall } from './plan-call.ts';

export function clusterStatus(deps: {
  deployments: readonly Deployment[];
  registry: WorkerRegistry;
  requests: RequestTable;
  clock: Clock;
  groups?: () => readonly GroupRecord[];
  /** Which replica answers and which leads the group reconciler (unset: a single replica, always leading). */
  leadership?: Leadership;
  /** This replica's dispatch decisions by reason kind, per deployment. */
  pickReasons?: (deployment: string) => ReadonlyMap<string, number>;
}): ClusterStatus {
  const now = deps.clock.now();
  const workers = deps.registry.all();
  const leader = deps.leadership?.leader();
  return {
    nowMs: now,
    replicaId: deps.leadership?.id ?? '',
    leaderId: leader?.id ?? '',
    leaderEpoch: leader?.epoch ?? 0,
    workers: workers.map((w) => ({
      inventory: w.inventory,
      engines: w.engines,
      lastHeartbeatMs: w.lastHeartbeatMs,
      connected: w.conn.t === 'connected',
      draining: w.draining,
    })),
    deployments: deps.deployments.map((d) => {
      const v = deploymentView(d, workers, now);
      return {
        name: d.name,
        model: d.model,
        readyReplicas: v.ready,
        desiredReplicas: v.desired,
        outstandingRequests: deps.requests.outstandingOf(d.name),
        pickReasons: Object.fromEntries(deps.pickReasons?.(d.name) ?? []),
      };
    }),
    groups: (deps.groups?.() ?? []).map((r) => groupSummary(r, now)),
  };
}

export function groupSummary({ group: g, lastFailure }: GroupRecord, now: number): GroupSummary {
  const s = g.state;
  let waitingFor = '';
  if (s.t === 'pending') {
    if (now < s.retryAt) waitingFor = `rebuild in ${((s.retryAt - now) / 1000).toFixed(1)} s (backoff)`;
    else if (s.lastFailure?.startsWith('waiting')) waitingFor = s.lastFailure;
  }
  return {
    id: g.id,
    deployment: g.deployment,
    state: s.t,
    stateSinceMs: s.since,
    ranks: ranksOf(s).map((r) => ({ rank: r.rank, workerId: r.workerId, engineId: r.engineId })),
    restarts: g.restarts,
    attempt: g.attempt,
    lastFailure: s.t === 'failed' ? s.reason : lastFailure,
    waitingFor,
  };
}

/**
 * `authenticate` throws for a caller that may not see the cluster (with tenants configured: any call without
 * a valid key), so the cluster's shape is not shown to whoever reaches the port.
 */
export function controlService(
  deps: Parameters<typeof clusterStatus>[0],
  authenticate: (md: Metadata) => void,
): ControlServer {
  return {
    status: (call: ServerUnaryCall<StatusRequest, ClusterStatus>, callback: sendUnaryData<ClusterStatus>) => {
      try {
        authenticate(call.metadata);
        callback(null, clusterStatus(deps));
      } catch (e) {
        callback(toServiceError(e) as ServiceError, null);
      }
    },
    plan: (call: ServerUnaryCall<PlanRequest, PlanResponse>, callback: sendUnaryData<PlanResponse>) => {
      const connected = deps.registry.all().filter((w) => w.conn.t === 'connected');
      try {
        authenticate(call.metadata);
        callback(
          null,
          planCall(
            call.request,
            connected.map((w) => w.inventory),
          ),
        );
      } catch (e) {
        callback(toServiceError(e) as ServiceError, null);
      }
    },
  };
}
