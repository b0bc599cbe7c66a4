/**
 * Level-triggered group reconciler (pure): from the desired groups per deployment, the groups that exist and
 * what the workers report, decide each group's next state and the directives to send. Called on every heartbeat
 * and on a timer; calling it twice with the same input changes nothing the second time.
 *
 * Healing: a rank whose worker is lost (no heartbeat for workerTimeoutMs: the registry decides) or whose engine
 * exited takes the whole group back to `pending` at once and stops the surviving ranks, because their collectives
 * would hang until NCCL's timeout. The group is rebuilt after backoff(restarts) = min(base * 2^restarts, max) on
 * whichever workers have room, and `failed` after maxRestarts rebuilds.
 *
 * A group of one node is the single-node engine of issue 2: the worker restarts an exited engine itself (it is
 * no group member), so `exited` there is a restart in progress, not a broken group; only `failed` (the worker gave
 * up), `stopped`, a lost worker or a missing engine break it.
 */
import { type GroupState, type RankPlacement, ranksOf, transition } from './group-state.ts';

export type RankEngineState = 'starting' | 'ready' | 'exited' | 'failed' | 'stopped';

export interface WorkerView {
  id: string;
  /** Connected and heartbeating within workerTimeoutMs. */
  live: boolean;
  draining: boolean;
  gpus: number;
  gpuType: string;
  /** Where this worker's engines listen and peers reach them (VLLM_HOST_IP); rank 0's is the master address. */
  engineHost?: string;
  labels: Readonly<Record<string, string>>;
  /** Engines this worker reports, by engine id. */
  engines: ReadonlyMap<string, { state: RankEngineState; detail?: string }>;
}

export interface LaunchSpec {
  model: string;
  args: string[];
  env: Record<string, string>;
  gpus: number;
  headless: boolean;
  /** A rank of a multi-node group: its worker must not restart it alone (the controller rebuilds the group). */
  groupMember?: boolean;
}

/** What one deployment wants: how many groups, each of `nodes` workers with `gpusPerNode` free GPUs. */
export interface GroupTemplate {
  deployment: string;
  replicas: number;
  nodes: number;
  gpusPerNode: number;
  /** Workers of a group must share this label's value (e.g. one rack or NVLink domain); unset: any. */
  topologyKey?: string;
  gpuType?: string;
  /** At most one group of this deployment per worker (replicas spread over nodes, as the issue-2 launcher did). */
  onePerWorker?: boolean;
  /** The engine id of a rank; default engineIdOf(group, attempt, rank). */
  engineId?(group: { id: string; ordinal: number }, attempt: number, rank: number, workerId: string): string;
  /** The launch of one rank, given the worker that hosts rank 0. */
  launch(rank: number, leader: WorkerView, group: { id: string; ordinal: number }): LaunchSpec;
}

export interface Group {
  id: string;
  deployment: string;
  ordinal: number; // unique per controller, used for per-group ports on shared hosts
  attempt: number; // launches so far; part of engine ids so a past attempt's report is never mistaken
  restarts: number; // rebuilds after a failure
  state: GroupState;
}

export interface GroupPolicy {
  maxRestarts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** launching + loading may take this long (a 405B load is minutes) before it counts as a failure. */
  startTimeoutMs: number;
}

export type Directive =
  | ({ t: 'launch'; workerId: string; engineId: string } & LaunchSpec)
  | { t: 'stop'; workerId: string; engineId: string };

export interface GroupEvent {
  groupId: string;
  from: GroupState['t'] | 'new';
  to: GroupState['t'];
  reason: string;
}

export interface ReconcileResult {
  groups: Group[];
  directives: Directive[];
  events: GroupEvent[];
}

export function backoffMs(restarts: number, policy: GroupPolicy): number {
  return Math.min(policy.backoffBaseMs * 2 ** Math.max(0, restarts - 1), policy.backoffMaxMs);
}

export function engineIdOf(groupId: string, attempt: number, rank: number): string {
  return `${groupId}.a${attempt}.r${rank}`;
}

/** The inverse of engineIdOf for the groups `<deployment>-g<ordinal>` of a deployment; undefined for other ids. */
export function parseEngineIdOf(
  engineId: string,
  deployment: string,
): { ordinal: number; attempt: number; rank: number } | undefined {
  const prefix = `${deployment}-g`;
  if (!engineId.startsWith(prefix)) return undefined;
  const m = /^(\d+)\.a(\d+)\.r(\d+)$/.exec(engineId.slice(prefix.length));
  if (!m) return undefined;
  const [ordinal, attempt, rank] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // only what engineIdOf produces (no leading zeros): another spelling is another engine
  if (engineIdOf(`${prefix}${ordinal}`, attempt, rank) !== engineId) return undefined;
  return { ordinal, attempt, rank };
}

function idOf(t: GroupTemplate, g: Group, attempt: number, rank: number, workerId: string): string {
  return t.engineId ? t.engineId(g, attempt, rank, workerId) : engineIdOf(g.id, attempt, rank);
}

export function reconcileGroups(input: {
  templates: readonly GroupTemplate[];
  groups: readonly Group[];
  workers: readonly WorkerView[];
  policy: GroupPolicy;
  now: number;
  nextOrdinal: number;
}): ReconcileResult {
  const { policy, now } = input;
  const workers = new Map(input.workers.map((w) => [w.id, w]));
  const directives: Directive[] = [];
  const events: GroupEvent[] = [];
  let nextOrdinal = input.nextOrdinal;
  const out: Group[] = [];

  const move = (g: Group, to: GroupState, reason: string): Group => {
    events.push({ groupId: g.id, from: g.state.t, to: to.t, reason });
    return { ...g, state: transition(g.id, g.state, to) };
  };
  const stopRanks = (ranks: readonly RankPlacement[]) => {
    for (const r of ranks) {
      if (workers.get(r.workerId)?.live)
        directives.push({ t: 'stop', workerId: r.workerId, engineId: r.engineId });
    }
  };
  const fail = (g: Group, reason: string): Group => {
    stopRanks(ranksOf(g.state));
    const restarts = g.restarts + 1;
    if (restarts > policy.maxRestarts) {
      return move(
        g,
        { t: 'failed', since: now, reason: `${reason}; gave up after ${g.restarts} rebuilds` },
        reason,
      );
    }
    const retryAt = now + backoffMs(restarts, policy);
    return { ...move(g, { t: 'pending', since: now, retryAt, lastFailure: reason }, reason), restarts };
  };

  for (const template of input.templates) {
    const mine = input.groups.filter((g) => g.deployment === template.deployment);
    // Draining groups are on their way out: they count neither toward the replicas nor as surplus again.
    const alive = mine.filter((g) => g.state.t !== 'stopped' && g.state.t !== 'draining');
    // Scale up: new groups start pending; scale down: the newest non-failed groups drain.
    for (let i = alive.length; i < template.replicas; i++) {
      const ordinal = nextOrdinal++;
      const g: Group = {
        id: `${template.deployment}-g${ordinal}`,
        deployment: template.deployment,
        ordinal,
        attempt: 0,
        restarts: 0,
        state: { t: 'pending', since: now, retryAt: now },
      };
      events.push({
        groupId: g.id,
        from: 'new',
        to: 'pending',
        reason: `deployment wants ${template.replicas}`,
      });
      mine.push(g);
    }
    const surplus = alive.length - template.replicas;
    const toDrain = new Set(
      surplus > 0
        ? alive
            .filter((g) => g.state.t !== 'failed')
            .sort((a, b) => b.ordinal - a.ordinal)
            .slice(0, surplus)
            .map((g) => g.id)
        : [],
    );

    for (const original of mine) {
      let g = original;
      if (toDrain.has(g.id)) {
        const ranks = ranksOf(g.state);
        if (g.state.t === 'ready') {
          g = move(g, { t: 'draining', since: now, ranks: [...ranks] }, 'scale down');
        } else {
          stopRanks(ranks);
          g = move(g, { t: 'stopped', since: now, reason: 'scale down' }, 'scale down');
        }
      }
      g = step(g);
      out.push(g);
    }

    function step(g: Group): Group {
      const s = g.state;
      switch (s.t) {
        case 'pending': {
          if (now < s.retryAt) return g;
          const placement = place(template, g, out, input.groups, workers);
          if (typeof placement === 'string') {
            return placement === s.lastFailure ? g : { ...g, state: { ...s, lastFailure: placement } };
          }
          const attempt = g.attempt + 1;
          const ranks = placement.map((w, rank) => ({
            rank,
            workerId: w.id,
            engineId: idOf(template, g, attempt, rank, w.id),
            gpus: template.gpusPerNode,
          }));
          const leader = placement[0]!;
          for (const r of ranks) {
            const spec = template.launch(r.rank, leader, { id: g.id, ordinal: g.ordinal });
            directives.push({ t: 'launch', workerId: r.workerId, engineId: r.engineId, ...spec });
          }
          const where = placement.map((w) => w.id).join(', ');
          return { ...move(g, { t: 'launching', since: now, ranks }, `placed on ${where}`), attempt };
        }
        case 'launching':
        case 'loading':
        case 'ready':
        case 'draining': {
          // Before every rank has reported its engine once, a missing report only means "not yet".
          const broken = brokenRank(s.ranks, workers, s.t !== 'launching', template.nodes > 1);
          if (broken) return s.t === 'draining' ? finishDrain(g, s.ranks, broken) : fail(g, broken);
          const states = s.ranks.map((r) => workers.get(r.workerId)?.engines.get(r.engineId)?.state);
          if (s.t === 'draining') return g; // the gateway reports when in-flight requests are done (drained())
          if ((s.t === 'launching' || s.t === 'loading') && now - s.since > policy.startTimeoutMs) {
            return fail(g, `not ready within ${Math.round(policy.startTimeoutMs / 1000)} s`);
          }
          if (s.t === 'launching' && states.every((x) => x !== undefined)) {
            // A leader already healthy (a fast simulator, an engine kept across a controller restart) is ready
            // in this same pass: the replica view routes as soon as the registry shows it, so should we.
            return step(move(g, { t: 'loading', since: now, ranks: s.ranks }, 'every rank started'));
          }
          if (s.t === 'loading' && states[0] === 'ready') {
            return move(g, { t: 'ready', since: now, ranks: s.ranks }, 'leader healthy, every rank running');
          }
          return g;
        }
        default:
          return g;
      }
    }

    function finishDrain(g: Group, ranks: readonly RankPlacement[], why: string): Group {
      stopRanks(ranks);
      return move(g, { t: 'stopped', since: now, reason: `drained (${why})` }, why);
    }
  }
  return { groups: out, directives, events };
}

/** Stops a draining group once the gateway says its last request finished. */
export function drained(group: Group, now: number): { group: Group; directives: Directive[] } {
  if (group.state.t !== 'draining') return { group, directives: [] };
  const directives: Directive[] = group.state.ranks.map((r) => ({
    t: 'stop',
    workerId: r.workerId,
    engineId: r.engineId,
  }));
  return {
    group: {
      ...group,
      state: transition(group.id, group.state, { t: 'stopped', since: now, reason: 'drained' }),
    },
    directives,
  };
}

/** Why the group cannot go on, or undefined while every rank is alive. */
function brokenRank(
  ranks: readonly RankPlacement[],
  workers: ReadonlyMap<string, WorkerView>,
  mustBeReported: boolean,
  exitedIsBroken: boolean,
): string | undefined {
  for (const r of ranks) {
    const w = workers.get(r.workerId);
    if (!w?.live) return `rank ${r.rank} lost: worker ${r.workerId} stopped heartbeating`;
    const e = w.engines.get(r.engineId);
    // A worker that restarted faster than the heartbeat timeout comes back without the engine.
    if (!e && mustBeReported) return `rank ${r.rank} lost: worker ${r.workerId} no longer runs ${r.engineId}`;
    if (e && ((exitedIsBroken && e.state === 'exited') || e.state === 'failed' || e.state === 'stopped')) {
      return `rank ${r.rank} lost: engine ${r.engineId} on ${r.workerId} ${e.state}${e.detail ? ` (${e.detail})` : ''}`;
    }
  }
  return undefined;
}

/**
 * Chooses `nodes` workers for a group: live, not draining, of the GPU type, each with gpusPerNode GPUs not used by
 * another group, sharing the topology label when one is required. Prefers workers with the fewest free GPUs left
 * over (best fit) so large holes stay available for large groups. Returns the reason when impossible.
 */
function place(
  template: GroupTemplate,
  group: Group,
  decided: readonly Group[],
  previous: readonly Group[],
  workers: ReadonlyMap<string, WorkerView>,
): WorkerView[] | string {
  const used = new Map<string, number>();
  const mine = new Set<string>();
  const current = new Map<string, Group>(previous.map((g) => [g.id, g]));
  for (const g of decided) current.set(g.id, g);
  for (const g of current.values()) {
    if (g.id === group.id) continue;
    for (const r of ranksOf(g.state)) {
      used.set(r.workerId, (used.get(r.workerId) ?? 0) + r.gpus);
      if (g.deployment === group.deployment) mine.add(r.workerId);
    }
  }
  // A worker that gave up on this very engine id (a single-node group keeps its id per worker) would only
  // report FAILED again: the issue-2 launcher never relaunched there either; `corral status` shows why.
  const gaveUp = (w: WorkerView) =>
    template.nodes === 1 &&
    w.engines.get(idOf(template, group, group.attempt + 1, 0, w.id))?.state === 'failed';
  const free = (w: WorkerView) => w.gpus - (used.get(w.id) ?? 0);
  const candidates = [...workers.values()]
    .filter((w) => w.live && !w.draining && (!template.gpuType || w.gpuType === template.gpuType))
    .filter((w) => free(w) >= template.gpusPerNode)
    .filter((w) => !(template.onePerWorker && mine.has(w.id)) && !gaveUp(w))
    .sort((a, b) => free(a) - free(b) || a.id.localeCompare(b.id));
  const want = `${template.nodes} worker${template.nodes > 1 ? 's' : ''} with ${template.gpusPerNode} free ${template.gpuType ?? ''} GPUs`;
  if (!template.topologyKey) {
    return candidates.length >= template.nodes
      ? candidates.slice(0, template.nodes)
      : `waiting for ${want} (${candidates.length} available)`;
  }
  const byDomain = new Map<string, WorkerView[]>();
  for (const w of candidates) {
    const domain = w.labels[template.topologyKey];
    if (domain === undefined) continue;
    byDomain.set(domain, [...(byDomain.get(domain) ?? []), w]);
  }
  for (const members of byDomain.values())
    if (members.length >= template.nodes) return members.slice(0, template.nodes);
  return `waiting for ${want} sharing ${template.topologyKey}`;
}
