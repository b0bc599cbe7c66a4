/**
 * Adoption (pure): a controller replica that becomes the leader rebuilds the groups from what the workers report,
 * instead of relaunching groups that run (reloading 405B takes minutes). Engine ids carry what is needed:
 *   a rank of a multi-node group   <deployment>-g<ordinal>.a<attempt>.r<rank>  (engineIdOf in group-reconciler.ts)
 *   a single-node group            the template's own id per worker (`<deployment>-<worker>`), one per worker
 * A multi-node group is adopted when every rank 0..nodes-1 of one (ordinal, attempt) runs (starting or ready) on
 * distinct live workers; it keeps its ordinal (its ranks meet on a port derived from it) and attempt. A partial
 * group cannot be adopted: its ranks are left to the orphan sweep, and the reconciler rebuilds the group, as it
 * would after losing a rank. A single-node engine that starts, runs or is being restarted by its worker is
 * adopted as a group with a fresh ordinal (its id does not carry one). At most `replicas` groups per deployment
 * are adopted, the oldest ordinals first; the rest are orphans and get stopped.
 *
 * Adopted groups are `ready` when rank 0 is ready, else `loading` with the start timeout counted from now.
 * Restart counts and last failures are not reported by workers: they start again from zero.
 */
import {
  type Group,
  type GroupTemplate,
  parseEngineIdOf,
  type RankEngineState,
  type WorkerView,
} from './group-reconciler.ts';
import { type GroupState, type RankPlacement, ranksOf } from './group-state.ts';

const RUNNING: ReadonlySet<RankEngineState> = new Set(['starting', 'ready']);

export interface AdoptionResult {
  groups: Group[];
  /** Past every ordinal seen in an engine id, adopted or not, so a new group never reuses one. */
  nextOrdinal: number;
}

export function adoptGroups(input: {
  templates: readonly GroupTemplate[];
  workers: readonly WorkerView[];
  now: number;
  nextOrdinal: number;
}): AdoptionResult {
  const live = input.workers.filter((w) => w.live).sort((a, b) => a.id.localeCompare(b.id));
  let nextOrdinal = input.nextOrdinal;
  const groups: Group[] = [];
  for (const t of input.templates) {
    const found: Group[] = [];
    if (t.engineId) {
      for (const w of live) {
        const id = t.engineId({ id: '', ordinal: 0 }, 1, 0, w.id);
        const e = w.engines.get(id);
        // a single-node engine is restarted by its worker: `exited` is a restart in progress
        if (!e || !(RUNNING.has(e.state) || e.state === 'exited')) continue;
        const ordinal = nextOrdinal++;
        const ranks = [{ rank: 0, workerId: w.id, engineId: id, gpus: t.gpusPerNode }];
        found.push(adopted(t, ordinal, 1, ranks, e.state === 'ready', input.now));
      }
    } else {
      const sets = new Map<string, { ordinal: number; attempt: number; ranks: Map<number, RankPlacement> }>();
      for (const w of live) {
        for (const [engineId, e] of w.engines) {
          const parsed = parseEngineIdOf(engineId, t.deployment);
          if (!parsed) continue;
          nextOrdinal = Math.max(nextOrdinal, parsed.ordinal + 1);
          if (!RUNNING.has(e.state) || parsed.rank >= t.nodes) continue;
          const key = `${parsed.ordinal}.${parsed.attempt}`;
          const set = sets.get(key) ?? { ordinal: parsed.ordinal, attempt: parsed.attempt, ranks: new Map() };
          set.ranks.set(parsed.rank, { rank: parsed.rank, workerId: w.id, engineId, gpus: t.gpusPerNode });
          sets.set(key, set);
        }
      }
      const byOrdinal = new Map<number, Group>();
      for (const set of sets.values()) {
        const ranks = [...set.ranks.values()].sort((a, b) => a.rank - b.rank);
        const distinct = new Set(ranks.map((r) => r.workerId)).size === t.nodes;
        if (ranks.length !== t.nodes || !distinct) continue;
        const previous = byOrdinal.get(set.ordinal);
        if (previous && previous.attempt > set.attempt) continue; // an older attempt's leftovers
        const leader = live.find((w) => w.id === ranks[0]?.workerId);
        const leaderReady = leader?.engines.get(ranks[0]?.engineId ?? '')?.state === 'ready';
        byOrdinal.set(set.ordinal, adopted(t, set.ordinal, set.attempt, ranks, leaderReady, input.now));
      }
      found.push(...byOrdinal.values());
    }
    found.sort((a, b) => a.ordinal - b.ordinal);
    groups.push(...found.slice(0, t.replicas));
  }
  return { groups, nextOrdinal };
}

function adopted(
  t: GroupTemplate,
  ordinal: number,
  attempt: number,
  ranks: RankPlacement[],
  leaderReady: boolean,
  now: number,
): Group {
  const state: GroupState = leaderReady
    ? { t: 'ready', since: now, ranks }
    : { t: 'loading', since: now, ranks };
  return {
    id: `${t.deployment}-g${ordinal}`,
    deployment: t.deployment,
    ordinal,
    attempt,
    restarts: 0,
    state,
  };
}

/**
 * Late adoption: a worker that registers after the term began (it reconnects with backoff, or learns of this
 * replica from DNS seconds later) may report a complete group this leader does not know. Such a group takes the
 * place of a pending group of its deployment, one not placed yet, instead of that one being launched anew.
 * Engines already owned by a group, and those in `exclude` (the leader is stopping them), are not offered.
 */
export function adoptIntoPending(input: {
  groups: readonly Group[];
  templates: readonly GroupTemplate[];
  workers: readonly WorkerView[];
  exclude: ReadonlySet<string>;
  now: number;
  nextOrdinal: number;
}): AdoptionResult & { adopted: Group[] } {
  const owned = new Set(input.groups.flatMap((g) => ranksOf(g.state).map((r) => r.engineId)));
  const offered = input.workers.map((w) => ({
    ...w,
    engines: new Map([...w.engines].filter(([id]) => !owned.has(id) && !input.exclude.has(id))),
  }));
  const found = adoptGroups({
    templates: input.templates,
    workers: offered,
    now: input.now,
    nextOrdinal: input.nextOrdinal,
  });
  const groups = [...input.groups];
  const adopted: Group[] = [];
  for (const g of found.groups) {
    if (groups.some((x) => x.id === g.id)) continue; // its ordinal went to a group of this term meanwhile
    const slot = groups.findIndex((x) => x.deployment === g.deployment && x.state.t === 'pending');
    if (slot < 0) continue;
    groups[slot] = g;
    adopted.push(g);
  }
  return { groups, adopted, nextOrdinal: Math.max(input.nextOrdinal, found.nextOrdinal) };
}
