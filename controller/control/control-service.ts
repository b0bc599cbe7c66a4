/** Control.Status for `corral status`: every worker the registry knows and every deployment's readiness. */
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type { Clock } from '../../common/clock.ts';
import type { ClusterStatus, ControlServer, StatusRequest } from '../../proto/gen/corral/v1/control.ts';
import type { Deployment } from '../config/controller-config.ts';
import { deploymentView } from '../deployments/replica-view.ts';
import type { RequestTable } from '../gateway/request-table.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';

export function clusterStatus(deps: {
  deployments: readonly Deployment[];
  registry: WorkerRegistry;
  requests: RequestTable;
  clock: Clock;
}): ClusterStatus {
  const now = deps.clock.now();
  const workers = deps.registry.all();
  return {
    nowMs: now,
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
      };
    }),
  };
}

export function controlService(deps: Parameters<typeof clusterStatus>[0]): ControlServer {
  return {
    status: (
      _call: ServerUnaryCall<StatusRequest, ClusterStatus>,
      callback: sendUnaryData<ClusterStatus>,
    ) => {
      callback(null, clusterStatus(deps));
    },
  };
}
