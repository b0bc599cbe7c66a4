/** `corral status`: the deployments, their groups (state, ranks, restarts, last failure), workers and engines,
 * as the controller sees them now. */
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { ClusterStatus } from '../proto/gen/corral/v1/control.ts';
import { EngineState } from '../proto/gen/corral/v1/worker.ts';
import type { CommandSpec } from './args.ts';
import { controlClient, fetchStatus } from './clients.ts';
import { resolveApiKey, resolveControllerAddress } from './endpoint.ts';
import { table } from './table.ts';

export const statusSpec: CommandSpec = {
  usage: 'corral status [--addr HOST:PORT] [--api-key KEY] [--json]',
  options: { addr: { type: 'string' }, 'api-key': { type: 'string' }, json: { type: 'boolean' } },
};

export async function runStatus(values: Record<string, unknown>, out = process.stdout): Promise<number> {
  const address = resolveControllerAddress(values.addr as string | undefined);
  const client = controlClient(address, resolveApiKey(values['api-key'] as string | undefined));
  try {
    const status = await fetchStatus(client);
    out.write(values.json ? `${JSON.stringify(status)}\n` : formatStatus(status));
    return 0;
  } catch (e) {
    const se = e as ServiceError;
    process.stderr.write(
      se.code === grpcStatus.UNAUTHENTICATED
        ? `error: the controller at ${address} refused the API key: ${se.details} (--api-key or CORRAL_API_KEY)\n`
        : `error: cannot reach the controller at ${address}: ${se.details}\n`,
    );
    return 1;
  } finally {
    client.close();
  }
}

export function engineStateName(state: EngineState): string {
  return (EngineState[state] ?? 'UNKNOWN').replace('ENGINE_STATE_', '').toLowerCase();
}

/** "prefix hit 121, least outstanding 6": the dispatcher's picks by reason, most frequent first. */
function routedLine(reasons: Readonly<Record<string, number>>): string {
  const kinds = Object.entries(reasons).sort((a, b) => b[1] - a[1]);
  return kinds.length > 0 ? kinds.map(([kind, n]) => `${kind} ${n}`).join(', ') : '-';
}

export function formatStatus(status: ClusterStatus): string {
  const deployments = table(
    ['DEPLOYMENT', 'MODEL', 'READY', 'OUTSTANDING', 'ROUTED BY THIS REPLICA'],
    status.deployments.map((d) => [
      d.name,
      d.model,
      `${d.readyReplicas}/${d.desiredReplicas}`,
      String(d.outstandingRequests),
      routedLine(d.pickReasons),
    ]),
  );
  const engines: string[][] = [];
  for (const w of status.workers) {
    const inv = w.inventory;
    const ageS = ((status.nowMs - w.lastHeartbeatMs) / 1000).toFixed(1);
    const node = `${inv?.nodeName ?? '?'} (${inv?.gpus?.count ?? 0}x ${inv?.gpus?.type ?? '?'})`;
    const conn = w.connected ? `${w.draining ? 'draining, ' : ''}heartbeat ${ageS}s ago` : 'LOST';
    if (w.engines.length === 0) engines.push([node, conn, '-', '-', '-', '']);
    for (const e of w.engines) {
      const exit = e.lastExit ? ` last exit: ${e.lastExit.signal || `code ${e.lastExit.code}`}` : '';
      engines.push([
        node,
        conn,
        e.engineId,
        engineStateName(e.state),
        `${e.running}/${e.waiting}/${(e.kvCacheUsage * 100).toFixed(0)}%`,
        `${e.detail}${exit}${e.restarts > 0 ? ` restarts: ${e.restarts}` : ''}`,
      ]);
    }
  }
  const workers = table(['WORKER', 'CONNECTION', 'ENGINE', 'STATE', 'RUN/WAIT/KV', 'DETAIL'], engines);
  const head = `${leadershipLine(status)}${deployments}`;
  if (status.groups.length === 0) return `${head}\n${workers}`;
  const groups = table(
    ['GROUP', 'STATE', 'SINCE', 'RANKS', 'RESTARTS', 'LAST FAILURE / WAITING FOR'],
    status.groups.map((g) => [
      g.id,
      g.state,
      // a follower's view of a group is as old as this answer: never print "-0s"
      `${(Math.max(0, status.nowMs - g.stateSinceMs) / 1000).toFixed(0)}s`,
      g.ranks.length > 0 ? g.ranks.map((r) => `${r.rank}:${r.workerId}`).join(' ') : '-',
      String(g.restarts),
      [g.lastFailure, g.waitingFor].filter((x) => x !== '').join('; ') || '-',
    ]),
  );
  return `${head}\n${groups}\n${workers}`;
}

/** Which controller replica answered and which one leads the group reconciler (epoch: its fencing token). */
export function leadershipLine(status: ClusterStatus): string {
  if (status.replicaId === '') return '';
  const leader =
    status.leaderId === ''
      ? 'no leader known'
      : `leader ${status.leaderId === status.replicaId ? 'this replica' : status.leaderId}, epoch ${status.leaderEpoch}`;
  return `controller ${status.replicaId}: ${leader}\n\n`;
}
