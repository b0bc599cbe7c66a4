/**
 * The cluster simulator: N groups of one deployment in virtual time, driven by a workload, routed by a Router.
 * A discrete-event loop (event-queue.ts) with three kinds of event:
 *   arrival   a request reaches the controller: the dispatcher hands it to the router at once, or, when no
 *             group has room (maxOutstandingPerGroup), it waits in the queue's fair order (MemoryQueue, the
 *             pure policy the Redis queue implements) until a request finishes somewhere;
 *   stepEnd   a group's engine step ends: its sampled tokens are delivered (first tokens, finished requests),
 *             then the next step is planned and timed by the calibrated latency model;
 *   report    every reportIntervalMs each group reports KV usage and prefix-cache hits, like the worker's
 *             heartbeat, and the router corrects itself.
 * No Redis, gRPC, timers or processes: a run is a deterministic function of its inputs and seed.
 */

import { MemoryQueue } from '../../controller/queue/memory-queue.ts';
import type { GroupView } from '../../controller/scheduler/pick.ts';
import { reasonKind } from '../../controller/scheduler/pick-reason.ts';
import type { LatencyModel } from '../engine/model/latency-model.ts';
import { EngineGroup, type GroupShape } from './engine-group.ts';
import { EventQueue } from './event-queue.ts';
import type { Prompt } from './prompt-cache.ts';
import { seededRandom } from './random.ts';
import type { RouteInput, Router } from './routers.ts';
import { localPrompts, type PromptSource, type RunPrompts } from './run-prompts.ts';
import type { SimRequest, Workload } from './workload.ts';

export interface ClusterSimOptions {
  groups: number;
  shape: GroupShape;
  latency: LatencyModel;
  /** Builds the router; the oracle gets the groups themselves. */
  router: (groups: ReadonlyMap<string, EngineGroup>) => Router;
  workload: Workload;
  seed: number;
  /** Default 1000 ms (the worker heartbeat). */
  reportIntervalMs?: number;
  /** A group with this many outstanding requests takes no more; undefined = no bound (vLLM queues them). */
  maxOutstandingPerGroup?: number;
  /** How long after the last arrival the simulation may run to let requests finish. Default 120 s. */
  drainMs?: number;
  /**
   * Engines take each prompt's block hashes from the router instead of hashing the prompt again (default true;
   * false is what a real engine does: slower, the same schedule).
   */
  sharedBlockHashes?: boolean;
  /**
   * Engines read each step as the engine simulator does, a chunk and a sampled record per request (default
   * false: only the step's totals and the requests that started or finished; faster, the same schedule).
   */
  fullStepPlans?: boolean;
  /**
   * Where the requests' prompts come from (run-prompts.ts): by default built here as requests are dispatched; a
   * PromptThread (prompt-thread.ts) builds them ahead on another core, with the hashes of their answers' blocks
   * that the engines would make. The results are the same either way.
   */
  prompts?: PromptSource;
}

export interface ClusterSimResult {
  router: string;
  /** Per request (index = request id); NaN where it did not happen before the simulation ended. */
  dispatchMs: Float64Array;
  firstTokenMs: Float64Array;
  finishMs: Float64Array;
  /** Requests no group could ever run (prompt + output beyond the KV cache or max_model_len): 1 at their id. */
  refused: Uint8Array;
  /** Output tokens delivered inside the measurement window [warmupMs, durationMs]. */
  windowOutputTokens: number;
  windowMs: number;
  /** Time-averaged outstanding requests of each group over the measurement window. */
  meanOutstanding: number[];
  /** Pick reasons by kind (their leading words). */
  reasons: Map<string, number>;
  prefixHitTokens: number;
  prefixQueryTokens: number;
  /** Requests preempted by recompute, all groups. */
  preemptions: number;
  steps: number;
  /** Of those, steps run inside decode stretches (sim/engine/model/decode-stretch.ts). */
  stretchSteps: number;
  endMs: number;
}

type SimEvent = { k: 'arrival'; i: number } | { k: 'stepEnd'; g: number } | { k: 'report' };

const DEPLOYMENT = 'sim';

export function runClusterSim(o: ClusterSimOptions): ClusterSimResult {
  const prompts = o.prompts?.open(o.workload.requests) ?? localPrompts();
  try {
    return simulate(o, prompts);
  } finally {
    prompts.close();
  }
}

function simulate(o: ClusterSimOptions, prompts: RunPrompts): ClusterSimResult {
  const { workload } = o;
  const requests = workload.requests;
  const n = requests.length;
  const engines: EngineGroup[] = [];
  const byId = new Map<string, EngineGroup>();
  const views: GroupView[] = [];
  for (let g = 0; g < o.groups; g++) {
    const e = new EngineGroup(`g${g}`, o.shape, o.latency, {
      sharedBlockHashes: o.sharedBlockHashes ?? true,
      fullPlans: o.fullStepPlans ?? false,
    });
    engines.push(e);
    byId.set(e.id, e);
    views.push({ id: e.id, deployment: DEPLOYMENT, state: 'ready', outstanding: 0, kvUsage: 0 });
  }
  const indexOf = new Map(engines.map((e, g) => [e.id, g]));
  const router = o.router(byId);
  const random = seededRandom(o.seed);
  const events = new EventQueue<SimEvent>();
  const queue = new MemoryQueue();
  /** The prompt of each request from its dispatch until it finishes. */
  const promptOf: (Prompt | undefined)[] = new Array(n);
  const cap = o.maxOutstandingPerGroup ?? Number.POSITIVE_INFINITY;
  const reportMs = o.reportIntervalMs ?? 1000;
  const endMs = workload.durationMs + (o.drainMs ?? 120_000);
  const from = workload.warmupMs;
  const to = workload.durationMs;

  const result: ClusterSimResult = {
    router: router.name,
    dispatchMs: new Float64Array(n).fill(Number.NaN),
    firstTokenMs: new Float64Array(n).fill(Number.NaN),
    finishMs: new Float64Array(n).fill(Number.NaN),
    refused: new Uint8Array(n),
    windowOutputTokens: 0,
    windowMs: Math.max(0, to - from),
    meanOutstanding: new Array(o.groups).fill(0),
    reasons: new Map(),
    prefixHitTokens: 0,
    prefixQueryTokens: 0,
    preemptions: 0,
    steps: 0,
    stretchSteps: 0,
    endMs: 0,
  };
  // Outstanding x time over the window, per group, accumulated at each change.
  const loadArea = new Float64Array(o.groups);
  const lastChange = new Float64Array(o.groups);
  const setOutstanding = (g: number, delta: number, now: number) => {
    const view = views[g] as GroupView;
    const overlap = Math.max(0, Math.min(now, to) - Math.max(lastChange[g] as number, from));
    loadArea[g] = (loadArea[g] as number) + view.outstanding * overlap;
    lastChange[g] = now;
    view.outstanding += delta;
  };
  const lastHits = new Float64Array(o.groups);
  const lastQueries = new Float64Array(o.groups);
  let outstanding = 0;
  let nextArrival = 0;

  const startStep = (g: number, now: number) => {
    const e = engines[g] as EngineGroup;
    if (e.busy) return;
    const ms = e.startStep();
    if (ms !== undefined) events.schedule(now + ms, { k: 'stepEnd', g });
  };

  const withRoom = (): readonly GroupView[] =>
    cap === Number.POSITIVE_INFINITY ? views : views.filter((v) => v.outstanding < cap);

  /** Routes one request; false when no group has room (it stays queued). */
  const dispatch = (req: SimRequest, now: number): boolean => {
    const groups = withRoom();
    if (groups.length === 0) return false;
    const prompt = prompts.prompt(req);
    const input: RouteInput = { request: req, prompt, groups, deployment: DEPLOYMENT };
    const choice = router.route(input, random);
    if (choice.type !== 'group') return false;
    const g = indexOf.get(choice.id);
    if (g === undefined) throw new Error(`router ${router.name} chose unknown group ${choice.id}`);
    const kind = reasonKind(choice.reason);
    result.reasons.set(kind, (result.reasons.get(kind) ?? 0) + 1);
    (engines[g] as EngineGroup).add(req, prompt, prompts.answerBlocks(req));
    result.dispatchMs[req.id] = now;
    promptOf[req.id] = prompt;
    setOutstanding(g, +1, now);
    outstanding++;
    startStep(g, now);
    return true;
  };

  const drainQueue = (now: number) => {
    while (queue.depth > 0 && withRoom().length > 0) {
      const [item] = queue.take(1, now);
      if (!item) break;
      dispatch(requests[Number(item.id)] as SimRequest, now);
    }
  };

  if (n > 0) events.schedule((requests[0] as SimRequest).arrivalMs, { k: 'arrival', i: 0 });
  events.schedule(reportMs, { k: 'report' });

  for (let ev = events.pop(); ev !== undefined; ev = events.pop()) {
    const now = events.now;
    if (now > endMs) break;
    if (ev.k === 'arrival') {
      const req = requests[ev.i] as SimRequest;
      nextArrival = ev.i + 1;
      if (nextArrival < n)
        events.schedule((requests[nextArrival] as SimRequest).arrivalMs, { k: 'arrival', i: nextArrival });
      if ((engines[0] as EngineGroup).refusal(req) !== null) result.refused[req.id] = 1;
      else if (queue.depth > 0 || !dispatch(req, now))
        queue.submit({ id: String(req.id), tenant: req.tenant, weight: 1, cls: 'standard' });
    } else if (ev.k === 'stepEnd') {
      const e = engines[ev.g] as EngineGroup;
      const d = e.endStep();
      result.steps++;
      if (now > from && now <= to) result.windowOutputTokens += d.outputTokens;
      for (const id of d.firstTokens) {
        result.firstTokenMs[id] = now;
        router.firstToken?.(id);
      }
      for (const id of d.finished) {
        result.finishMs[id] = now;
        // Its engine and router are done with its block hashes: a later prompt may reuse their memory.
        prompts.release(promptOf[id] as Prompt);
        promptOf[id] = undefined;
        setOutstanding(ev.g, -1, now);
        outstanding--;
      }
      if (d.finished.length > 0) drainQueue(now);
      startStep(ev.g, now);
    } else {
      engines.forEach((e, g) => {
        router.report?.(e.id, {
          hitTokens: e.prefixHitTokens - (lastHits[g] as number),
          queryTokens: e.prefixQueryTokens - (lastQueries[g] as number),
          kvBlocks: o.shape.numBlocks,
        });
        lastHits[g] = e.prefixHitTokens;
        lastQueries[g] = e.prefixQueryTokens;
        (views[g] as GroupView).kvUsage = e.kvUsage;
      });
      if (nextArrival < n || outstanding > 0 || queue.depth > 0)
        events.schedule(now + reportMs, { k: 'report' });
    }
    result.endMs = now;
  }

  for (let g = 0; g < o.groups; g++) {
    setOutstanding(g, 0, Math.max(result.endMs, to));
    result.meanOutstanding[g] = result.windowMs > 0 ? (loadArea[g] as number) / result.windowMs : 0;
  }
  for (const e of engines) {
    result.prefixHitTokens += e.prefixHitTokens;
    result.prefixQueryTokens += e.prefixQueryTokens;
    result.preemptions += e.preemptions;
    result.stretchSteps += e.stretchSteps;
  }
  return result;
}
