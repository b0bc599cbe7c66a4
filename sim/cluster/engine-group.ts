/**
 * One simulated group (one vLLM engine over TP x PP GPUs) in virtual time: the engine simulator's pure
 * step-synchronous scheduler (sim/engine/model/step-scheduler.ts: continuous batching, chunked prefill, KV blocks,
 * prefix cache, preemption) timed by its calibrated latency model. No second engine model lives here: this file
 * only feeds requests in, times each step and reports what the cluster simulator and the router need.
 *
 * A step is planned when it starts (nextStep) and its tokens appear when it ends (completeStep), as on a GPU:
 * requests that arrive meanwhile join the next step.
 */
import type { LatencyModel } from '../engine/model/latency-model.ts';
import {
  meanDecodeContext,
  type StepDelivery as SchedulerDelivery,
  type SchedulerPrompt,
  type SchedulerRequest,
  type StepPlan,
  StepScheduler,
  type StepTotals,
} from '../engine/model/step-scheduler.ts';
import type { Prompt } from './prompt-cache.ts';
import type { SimRequest } from './workload.ts';
import { promptTokenIds, splitKey, tokenOfSplit } from './workloads/prompt-segments.ts';

export interface GroupShape {
  numBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
}

/** What the end of a step delivered; valid until the group's next endStep (which refills the same object). */
export interface StepDelivery {
  /** Requests whose first output token this step sampled. */
  firstTokens: number[];
  finished: number[];
  outputTokens: number;
}

/** A request as this group's scheduler holds it: the simulator's id, and the answer its sampler reads. */
interface GroupRequest extends SchedulerRequest {
  readonly simId: number;
  /**
   * The answer's content key, split (splitKey): the sampler asks for one token per request per step, and reads
   * these two numbers of the request it already holds. The answer's tokens are the ones a next turn quotes
   * (workloads/multi-turn.ts), so its blocks hit.
   */
  readonly answerHigh: number;
  readonly answerSalt: number;
}

function answerToken(req: GroupRequest, index: number): number {
  return tokenOfSplit(req.answerHigh, req.answerSalt, index);
}

const draw = { token: 0, stop: false };

/** One object for every draw: the scheduler reads it at once (fullPlans samples a token per request per step). */
function sampleAnswer(req: GroupRequest, index: number): { token: number; stop: boolean } {
  draw.token = answerToken(req, index);
  return draw;
}

export class EngineGroup {
  private readonly scheduler: StepScheduler<GroupRequest>;
  /** Prompt tokens still to prefill of requests without a first token (the oracle's exact queue), if tracked. */
  private prefillBacklog = 0;
  private readonly expectedMiss = new Map<number, number>();
  /** Only the oracle reads the backlog; probing the cache at every add costs a hash of the whole prompt. */
  private tracking = false;
  private stepping = false;
  private readonly sharedBlockHashes: boolean;
  /** With fullPlans: the step in flight as the engine simulator reads it, and the requests by scheduler id. */
  private readonly fullPlans: boolean;
  private fullPlan: StepPlan | undefined;
  private readonly byId = new Map<string, GroupRequest>();
  private readonly delivery: StepDelivery = { firstTokens: [], finished: [], outputTokens: 0 };

  /**
   * `sharedBlockHashes` (default true): requests come as their prompt's block hashes (the router's, computed
   * once per request) and the few token ids after them, instead of the engine taking every prompt's ids and
   * hashing them again. `fullPlans` (default false): each step is read as the engine simulator reads it
   * (nextStep/completeStep: a chunk and a record per request) instead of its totals (planStep/finishStep). The
   * schedule is the same either way; the defaults are the fast ones.
   */
  constructor(
    readonly id: string,
    shape: GroupShape,
    private readonly latency: LatencyModel,
    options: { sharedBlockHashes?: boolean; fullPlans?: boolean } = {},
  ) {
    this.sharedBlockHashes = options.sharedBlockHashes ?? true;
    this.fullPlans = options.fullPlans ?? false;
    // An answer's tokens are a fixed function of its request: the scheduler asks for them only to hash a full
    // block, and stores none (the engine simulator's reading samples and stores each).
    this.scheduler = new StepScheduler<GroupRequest>(
      {
        maxNumSeqs: shape.maxNumSeqs,
        maxNumBatchedTokens: shape.maxNumBatchedTokens,
        maxModelLen: shape.maxModelLen,
        policy: 'fcfs',
        numBlocks: shape.numBlocks,
      },
      this.fullPlans ? undefined : answerToken,
    );
  }

  get kvUsage(): number {
    return this.scheduler.kvUsage;
  }
  get running(): number {
    return this.scheduler.numRunning;
  }
  get waiting(): number {
    return this.scheduler.numWaiting;
  }
  /** Cumulative prefix-cache hits in tokens (vllm:prefix_cache_hits_total). */
  get prefixHitTokens(): number {
    return this.scheduler.totals.prefixHitTokens;
  }
  /** Requests preempted by recompute so far (vllm:num_preemptions_total). */
  get preemptions(): number {
    return this.scheduler.totals.preemptions;
  }
  get prefixQueryTokens(): number {
    return this.scheduler.totals.prefixQueryTokens;
  }
  /** Steps run inside decode stretches (none with fullPlans): how much of the run skipped per-request visits. */
  get stretchSteps(): number {
    return this.scheduler.stretchSteps;
  }
  get pendingPrefillTokens(): number {
    return this.prefillBacklog;
  }
  get busy(): boolean {
    return this.stepping;
  }

  /** Why the request can never run on this group, or null. */
  refusal(req: SimRequest): string | null {
    return this.scheduler.refusal(req.promptTokens, req.outputTokens);
  }

  /** Exact: prompt tokens of the request this group's prefix cache holds right now (the oracle's view). */
  cachedTokens(req: SimRequest, prompt: Prompt): number {
    return this.scheduler.cachedPrefixTokens(this.schedulerPrompt(req, prompt));
  }

  trackPrefillBacklog(): void {
    this.tracking = true;
  }

  /**
   * `prompt`: the request's (run-prompts.ts); `answerBlocks`: the hashes of the full blocks of prompt + answer
   * after the prompt's, if made ahead (its scheduler then hashes none of them).
   */
  add(req: SimRequest, prompt: Prompt, answerBlocks?: Float64Array): void {
    const form = this.schedulerPrompt(req, prompt);
    if (this.tracking) {
      const miss = req.promptTokens - this.scheduler.cachedPrefixTokens(form);
      this.expectedMiss.set(req.id, miss);
      this.prefillBacklog += miss;
    }
    const answer = splitKey(req.outputKey);
    const request: GroupRequest = {
      id: String(req.id),
      ...form,
      // Only a scheduler told the answers (answerToken) takes their hashes, and only after the prompt's.
      ...(answerBlocks !== undefined && this.sharedBlockHashes && !this.fullPlans
        ? { answerBlockHashes: answerBlocks }
        : {}),
      maxTokens: req.outputTokens,
      priority: 0,
      simId: req.id,
      answerHigh: answer.high,
      answerSalt: answer.salt,
    };
    this.scheduler.add(request);
    if (this.fullPlans) this.byId.set(request.id, request);
  }

  /** Plans the next step; its duration in ms, or undefined when the group has nothing to do. */
  startStep(): number | undefined {
    if (this.stepping) throw new Error(`group ${this.id}: a step is already running`);
    if (!this.scheduler.hasWork) return undefined;
    const plan = this.fullPlans ? this.planFull() : this.scheduler.planStep();
    if (plan.scheduledSeqs === 0)
      throw new Error(
        `group ${this.id}: ${this.waiting} waiting and ${this.running} running, but nothing fits`,
      );
    this.stepping = true;
    return this.latency.stepMs(plan.decodeSeqs, meanDecodeContext(plan), plan.prefillTokens);
  }

  /** What the step delivered, in one object this group refills at its next endStep (one per step was garbage). */
  endStep(): StepDelivery {
    if (!this.stepping) throw new Error(`group ${this.id}: no step is running`);
    this.stepping = false;
    const out = this.fullPlans ? this.finishFull() : this.scheduler.finishStep();
    const delivery = this.delivery;
    delivery.outputTokens = out.sampledTokens;
    delivery.firstTokens.length = 0;
    delivery.finished.length = 0;
    // Indexed loops: most steps deliver the scheduler's shared empty list, and for-of over it and over the
    // others' arrays allocated an iterator.
    for (let i = 0; i < out.firstTokens.length; i++) {
      const id = (out.firstTokens[i] as GroupRequest).simId;
      delivery.firstTokens.push(id);
      if (!this.tracking) continue;
      this.prefillBacklog -= this.expectedMiss.get(id) ?? 0;
      this.expectedMiss.delete(id);
    }
    for (let i = 0; i < out.finished.length; i++)
      delivery.finished.push((out.finished[i] as GroupRequest).simId);
    return delivery;
  }

  /**
   * The prompt as this group's scheduler takes it: hashed (sharedBlockHashes), or every token id, as a real
   * engine gets it (materialised here: the slow reading, for tests that hold both to the same schedule).
   */
  private schedulerPrompt(req: SimRequest, prompt: Prompt): SchedulerPrompt {
    if (!this.sharedBlockHashes) return { promptIds: promptTokenIds(req.segments) };
    return { promptLength: prompt.length, blockHashes: prompt.blocks, promptTail: prompt.tail };
  }

  private planFull(): StepTotals {
    const plan = this.scheduler.nextStep();
    this.fullPlan = plan;
    return { ...plan, scheduledSeqs: plan.scheduled.length };
  }

  private finishFull(): SchedulerDelivery<GroupRequest> {
    const request = (id: string) => this.byId.get(id) as GroupRequest;
    const { sampled } = this.scheduler.completeStep(this.fullPlan as StepPlan, (id, index) =>
      sampleAnswer(request(id), index),
    );
    this.fullPlan = undefined;
    const finished = sampled.filter((t) => t.finish !== null).map((t) => request(t.id));
    for (const r of finished) this.byId.delete(r.id);
    return {
      sampledTokens: sampled.length,
      firstTokens: sampled.filter((t) => t.first).map((t) => request(t.id)),
      finished,
    };
  }
}
