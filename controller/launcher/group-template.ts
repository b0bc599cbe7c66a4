/**
 * The reconciler's view of a deployment (groups/group-reconciler.ts GroupTemplate): its group shape, how each
 * rank is launched (engine-args.ts), and how its engines are named. A single-node group keeps one engine id per
 * worker, as issue 2's launcher did, so a reconnecting or new leader re-sends the same id and the worker keeps
 * the engine; a rank of a multi-node group is `<group>.a<attempt>.r<rank>`.
 */
import type { Deployment } from '../config/controller-config.ts';
import type { GroupTemplate } from '../groups/group-reconciler.ts';
import { engineArgs, engineIdOf } from './engine-args.ts';

/** The reconciler's template of one deployment: its group shape and how each rank is launched. */
export function templateOf(d: Deployment, masterPortBase: number): GroupTemplate {
  const single = d.nodes === 1;
  return {
    deployment: d.name,
    replicas: d.replicas,
    nodes: d.nodes,
    gpusPerNode: d.gpusPerNode,
    ...(d.topologyKey ? { topologyKey: d.topologyKey } : {}),
    ...(d.gpuType ? { gpuType: d.gpuType.toLowerCase() } : {}),
    ...(single
      ? { onePerWorker: true, engineId: (_g, _a, _r, workerId) => engineIdOf(d.name, workerId) }
      : {}),
    launch: (rank, leader, group) => ({
      model: d.model,
      args: single
        ? engineArgs(d)
        : engineArgs(d, {
            rank,
            masterAddr: leader.engineHost || leader.id,
            // Groups of the local cluster share one host: each meets on its own port.
            masterPort: masterPortBase + group.ordinal,
          }),
      env: { ...d.engineEnv },
      gpus: d.gpusPerNode,
      headless: rank > 0,
      groupMember: !single,
    }),
  };
}
