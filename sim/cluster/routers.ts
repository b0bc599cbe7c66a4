/**
 * The routing policies the cluster simulator compares. Each sees what a controller would see (its own
 * outstanding counts, the groups' periodic reports), except the oracle, which reads every group's exact cache
 * and queue. corral's policy is the production scheduler.pick with its prefix index, driven exactly as the
 * dispatcher drives it: pick, then record the decision; correct the index from each group's report.
 *
 *   round_robin         next ready group in turn
 *   random              uniform over ready groups
 *   least_outstanding   fewest outstanding, random among ties
 *   power_of_two        two distinct groups at random, the one with fewer outstanding
 *   corral              controller/scheduler/pick.ts (prefix index + load + KV pressure + imbalance guard)
 *   oracle              corral's decision rule fed exact facts: every group's cached prefix of this prompt
 *                       (probed in its engine), its queued prefill and KV usage right now; the gap between
 *                       corral and the oracle is what the approximate index and the delayed reports cost
 */
import { BLOCK_SIZE } from '../../common/hardware/memory.ts';
import {
  DEFAULT_PICK_OPTIONS,
  type GroupView,
  type PickOptions,
  type PickResult,
  pick,
} from '../../controller/scheduler/pick.ts';
import { PrefixRouter } from '../../controller/scheduler/prefix-router.ts';
import type { EngineGroup } from './engine-group.ts';
import type { Prompt } from './prompt-cache.ts';
import type { Random } from './random.ts';
import type { SimRequest } from './workload.ts';

export interface RouteInput {
  request: SimRequest;
  /** The prompt's block hashes (the dispatcher's promptBlockHashes of its token ids), length and tail. */
  prompt: Prompt;
  /** The controller's view: only groups with room, with outstanding counts and last reported KV usage. */
  groups: readonly GroupView[];
  deployment: string;
}

export interface Router {
  readonly name: string;
  route(input: RouteInput, random: Random): PickResult;
  /** The request's first token came back from its group. */
  firstToken?(requestId: number): void;
  /** A group's periodic report: prefix-cache hits and queries (tokens) since its last report, KV blocks. */
  report?(groupId: string, report: { hitTokens: number; queryTokens: number; kvBlocks: number }): void;
}

function group(id: string, reason: string): PickResult {
  return { type: 'group', id, reason };
}

const none: PickResult = { type: 'reject', code: 'unavailable', reason: 'no group has room' };

export function roundRobin(): Router {
  let next = 0;
  return {
    name: 'round_robin',
    route({ groups }) {
      if (groups.length === 0) return none;
      const g = groups[next++ % groups.length] as GroupView;
      return group(g.id, 'round robin');
    },
  };
}

export function randomChoice(): Router {
  return {
    name: 'random',
    route({ groups }, random) {
      if (groups.length === 0) return none;
      return group((groups[Math.floor(random() * groups.length)] as GroupView).id, 'random');
    },
  };
}

export function leastOutstanding(): Router {
  return {
    name: 'least_outstanding',
    route({ groups }, random) {
      let least = Number.POSITIVE_INFINITY;
      let tied: GroupView[] = [];
      for (const g of groups) {
        if (g.outstanding < least) {
          least = g.outstanding;
          tied = [g];
        } else if (g.outstanding === least) tied.push(g);
      }
      if (tied.length === 0) return none;
      return group(
        (tied[Math.floor(random() * tied.length)] as GroupView).id,
        `least outstanding (${least})`,
      );
    },
  };
}

export function powerOfTwo(): Router {
  return {
    name: 'power_of_two',
    route({ groups }, random) {
      if (groups.length === 0) return none;
      const a = Math.floor(random() * groups.length);
      let b = Math.floor(random() * (groups.length - 1));
      if (b >= a) b++;
      const ga = groups[a] as GroupView;
      const gb = groups[b] ?? ga;
      const chosen = gb.outstanding < ga.outstanding ? gb : ga;
      return group(chosen.id, `power of two: fewer outstanding (${chosen.outstanding})`);
    },
  };
}

export function corral(options: { capacityBlocks: number; pick?: PickOptions }): Router {
  const router = new PrefixRouter(
    { capacityBlocks: options.capacityBlocks },
    options.pick ?? DEFAULT_PICK_OPTIONS,
  );
  return {
    name: 'corral',
    route(input, random) {
      const request = {
        deployment: input.deployment,
        promptTokens: input.request.promptTokens,
        promptBlocks: input.prompt.blocks,
      };
      return router.pick(input.groups, request, random, String(input.request.id));
    },
    firstToken(requestId) {
      router.firstToken(String(requestId));
    },
    report(groupId, r) {
      router.report(groupId, r);
    },
  };
}

export function oracle(
  groups: ReadonlyMap<string, EngineGroup>,
  options: PickOptions = DEFAULT_PICK_OPTIONS,
): Router {
  for (const g of groups.values()) g.trackPrefillBacklog();
  return {
    name: 'oracle',
    route(input, random) {
      const held = new Map<string, number>();
      const views = input.groups.map((v) => {
        const g = groups.get(v.id) as EngineGroup;
        const blocks = Math.floor(g.cachedTokens(input.request, input.prompt) / BLOCK_SIZE);
        if (blocks > 0) held.set(v.id, blocks);
        return { ...v, pendingPrefillTokens: g.pendingPrefillTokens, kvUsage: g.kvUsage };
      });
      const request = {
        deployment: input.deployment,
        promptTokens: input.request.promptTokens,
        promptBlocks: input.prompt.blocks,
      };
      return pick({ groups: views, prefixIndex: { matches: () => held } }, request, random, options);
    },
  };
}
