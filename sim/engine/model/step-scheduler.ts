/**
 * vLLM V1's scheduler (vllm/v1/core/sched/scheduler.py) as a pure, step-synchronous model: no timers, no clock,
 * no I/O, so the engine simulator runs it on timers and the cluster simulator runs it in virtual time.
 *
 * One engine step:
 *   const plan = s.nextStep();            // what the GPU computes this step (empty plan: nothing to do)
 *   const ms = latency.stepMs(plan.decodeSeqs, meanDecodeContext(plan), plan.prefillTokens);
 *   ...after ms of (virtual) time...
 *   const out = s.completeStep(plan, sample);  // tokens sampled, requests finished
 *
 * nextStep, as V1 schedules:
 *   - a token budget of --max-num-batched-tokens per step;
 *   - RUNNING requests first, in order: each gets what it still needs (1 token for a decode, the rest of its
 *     prompt for a prefill), capped by the budget (chunked prefill). When the KV cache has no block for it, the
 *     newest running request (FCFS), or the one with the largest (priority, arrival) (priority policy), is
 *     preempted by recompute: its blocks are freed, its computed tokens reset, and it goes back to the front of
 *     the waiting queue, until the request fits or preempts itself, which ends the running pass for this step;
 *   - then, only if nobody was preempted this step, WAITING requests in order (FCFS, or lowest priority value
 *     first), while the budget lasts and fewer than --max-num-seqs run: prefix-cache lookup (full blocks of
 *     --block-size tokens by chained hash, at most all but the last token), then a prefill chunk; a request that
 *     finds no KV blocks stops admission for this step and preempts nobody, whatever its priority (V1 preempts
 *     only for running requests).
 * completeStep: every scheduled request advances by its tokens; one that caught up with all its tokens samples
 * one (`sample` decides which, and whether it stops); it finishes on stop, at max_tokens or at max_model_len.
 *
 * One scheduling pass, two ways to read a step: nextStep/completeStep give the engine simulator a chunk per
 * request and a record per sampled token (it streams each token); planStep/finishStep give the cluster
 * simulator, which runs thousands of requests across dozens of groups, only the latency model's totals and the
 * requests that got a first token or finished (and, given its requests' answers as a function, stores no output
 * token, and runs a batch that cannot change as a decode stretch: decode-stretch.ts). The same requests run
 * either way: the schedule is identical. KV blocks and the prefix cache of each request: sequence-kv.ts.
 */
import { BLOCK_SIZE } from '../../../common/hardware/memory.ts';
import { DecodeStretch, NO_REQUESTS, type PlannedTotals } from './decode-stretch.ts';
import { enqueue, pickVictim } from './queue-policy.ts';
import { checkRequest, refusal } from './request-limits.ts';
import { newSeq, type Seq, SequenceKv } from './sequence-kv.ts';
import type {
  RequestSampler,
  SampledToken,
  Sampler,
  ScheduledChunk,
  SchedulerPrompt,
  SchedulerRequest,
  StepDelivery,
  StepOutcome,
  StepPlan,
  StepSchedulerConfig,
  StepTotals,
} from './step-plan.ts';

export type * from './step-plan.ts';
export { meanDecodeContext } from './step-plan.ts';

/** A decode: one new token after all earlier ones are in the KV cache (planned for the step in progress). */
const isDecode = (s: Seq) => s.plannedTokens === 1 && s.outputs > 0 && s.computed === s.numTokens;

/** `R`: the requests it takes (a subtype of SchedulerRequest carries what the caller's sampler needs). */
export class StepScheduler<R extends SchedulerRequest = SchedulerRequest> {
  private readonly kv: SequenceKv;
  private readonly blockSize: number;
  private readonly prefixCaching: boolean;
  private readonly byId = new Map<string, Seq<R>>();
  private waiting: Seq<R>[] = [];
  private running: Seq<R>[] = [];
  private arrivals = 0;
  private steps = 0;
  /** The non-empty step planned and not completed yet: steps run one at a time, as on the GPU. */
  private stepInFlight: number | undefined;
  /**
   * The requests of the step planned last, in the order of its chunks (completion reads them in that order);
   * one array, refilled by every pass (a step is completed before the next is planned).
   */
  private readonly inFlightSeqs: Seq<R>[] = [];
  /** What the pass in progress preempted and started, and the requests that sampled at the last completion. */
  private readonly preemptedNow: Seq<R>[] = [];
  private readonly startedNow: Seq<R>[] = [];
  private readonly sampledNow: Seq<R>[] = [];
  /** The totals of the step planned last. */
  private readonly planned: PlannedTotals = {
    decodeSeqs: 0,
    decodeContextTokens: 0,
    prefillTokens: 0,
    prefixQueryTokens: 0,
    prefixHitTokens: 0,
  };
  /** Totals since start (vLLM's counters). */
  readonly totals = { preemptions: 0, prefixQueryTokens: 0, prefixHitTokens: 0 };
  /** The decode stretch in progress; whether the last completion sampled every running request (one may begin). */
  private stretch: DecodeStretch<Seq<R>> | undefined;
  private caughtUp = false;
  /** Steps planned inside decode stretches (a diagnostic: the same schedule either way). */
  stretchSteps = 0;

  /**
   * `answerToken`: the output token a request samples at each index, when that is a fixed function of the
   * request and it never stops early (the cluster simulator's answers): completing a step then only counts
   * tokens (finishStep() without a sampler) and no output is stored; completeStep is refused. Without it, the
   * caller's sampler decides each token and whether it stops.
   */
  constructor(
    private readonly cfg: StepSchedulerConfig,
    private readonly answerToken?: (req: R, index: number) => number,
  ) {
    this.blockSize = cfg.blockSize ?? BLOCK_SIZE;
    this.prefixCaching = cfg.enablePrefixCaching ?? true;
    this.kv = new SequenceKv(
      cfg.numBlocks,
      this.blockSize,
      this.prefixCaching,
      answerToken as ((req: SchedulerRequest, index: number) => number) | undefined,
    );
  }

  get numRunning(): number {
    return this.running.length;
  }
  get numWaiting(): number {
    return this.waiting.length;
  }
  get hasWork(): boolean {
    return this.running.length + this.waiting.length > 0;
  }
  /** vLLM's kv_cache_usage_perc (0..1). */
  get kvUsage(): number {
    return this.kv.pool.usage;
  }

  /** Why a request can never run here, or null (request-limits.ts). */
  refusal(promptTokens: number, maxTokens: number): string | null {
    return refusal(this.cfg, this.blockSize, promptTokens, maxTokens);
  }

  add(req: R): void {
    if (this.byId.has(req.id)) throw new RangeError(`request ${req.id} is already scheduled`);
    checkRequest(this.cfg, this.blockSize, req, this.answerToken !== undefined);
    const seq = newSeq(req, this.arrivals++);
    this.byId.set(req.id, seq);
    enqueue(this.waiting, seq, false, this.cfg.policy);
  }

  /**
   * Prompt tokens the prefix cache holds right now, as admission would find them (full blocks, at most all but
   * the last token). No side effect: the cluster simulator's oracle router asks every group. The prompt comes
   * in the form its requests are added in (with block hashes or without: SchedulerPrompt).
   */
  cachedPrefixTokens(prompt: SchedulerPrompt): number {
    return this.kv.cachedPrefixTokens(prompt);
  }

  /** Drops a request wherever it is; false if it is unknown or already finished. */
  abort(id: string): boolean {
    const seq = this.byId.get(id);
    if (!seq) return false;
    this.endStretch();
    this.caughtUp = false;
    if (seq.state === 'waiting') this.waiting.splice(this.waiting.indexOf(seq), 1);
    else if (seq.state === 'running') this.running.splice(this.running.indexOf(seq), 1);
    this.retire(seq);
    return true;
  }

  /** Plans the next step with a chunk per request (an empty plan: nothing to do). */
  nextStep(): StepPlan {
    const step = this.schedule();
    const p = this.planned;
    return {
      step,
      scheduled: this.inFlightSeqs.map(
        (s): ScheduledChunk => ({
          id: s.req.id,
          tokens: s.plannedTokens,
          context: s.computed,
          decode: isDecode(s),
        }),
      ),
      decodeSeqs: p.decodeSeqs,
      decodeContextTokens: p.decodeContextTokens,
      prefillTokens: p.prefillTokens,
      preempted: this.preemptedNow.map((s) => s.req.id),
      started: this.startedNow.map((s) => s.req.id),
      prefixQueryTokens: p.prefixQueryTokens,
      prefixHitTokens: p.prefixHitTokens,
    };
  }

  /** Plans the next step as nextStep does, reporting only its totals; finishStep completes it. */
  planStep(): StepTotals {
    const stretched = this.planInStretch();
    const step = stretched ? this.steps : this.schedule();
    const p = this.planned;
    return {
      step,
      scheduledSeqs: stretched ? (this.stretch as DecodeStretch<Seq<R>>).size : this.inFlightSeqs.length,
      decodeSeqs: p.decodeSeqs,
      decodeContextTokens: p.decodeContextTokens,
      prefillTokens: p.prefillTokens,
    };
  }

  /**
   * The step ran: requests that caught up with their tokens sample one. Requests aborted since nextStep are
   * skipped. Call once per plan, in order.
   */
  completeStep(plan: StepPlan, sample: Sampler): StepOutcome {
    if (plan.scheduled.length === 0) return { sampled: [] };
    if (plan.step !== this.stepInFlight)
      throw new Error(`step ${plan.step} is not the step in flight (${this.stepInFlight ?? 'none'})`);
    if (this.answerToken)
      throw new Error('this scheduler samples fixed answers: finishStep() completes its steps');
    this.complete((req, index) => sample(req.id, index));
    return {
      sampled: this.sampledNow.map(
        (seq): SampledToken => ({
          id: seq.req.id,
          token: seq.lastToken,
          first: seq.outputs === 1,
          finish: seq.finish,
        }),
      ),
    };
  }

  /**
   * Completes the step planStep planned, as completeStep does: the requests that started or finished. `sample`
   * decides each token unless the scheduler was given answerToken (then none is needed).
   */
  finishStep(sample?: RequestSampler<R>): StepDelivery<R> {
    if (this.stepInFlight === undefined) throw new Error('no step is in flight: planStep() first');
    if (sample === undefined && this.answerToken === undefined)
      throw new Error('finishStep needs a sampler: this scheduler was given no answerToken');
    if (this.stretch?.complete()) {
      this.stepInFlight = undefined;
      return { sampledTokens: this.stretch.size, firstTokens: NO_REQUESTS, finished: NO_REQUESTS };
    }
    this.endStretch();
    this.complete(this.answerToken ? undefined : sample);
    const firstTokens: R[] = [];
    const finished: R[] = [];
    const sampled = this.sampledNow;
    for (let i = 0; i < sampled.length; i++) {
      const seq = sampled[i] as Seq<R>;
      if (seq.outputs === 1) firstTokens.push(seq.req);
      if (seq.finish !== null) finished.push(seq.req);
    }
    return { sampledTokens: sampled.length, firstTokens, finished };
  }

  /**
   * One step's scheduling pass (the file comment): marks each scheduled request with the step and its tokens,
   * leaves them in inFlightSeqs, what it preempted and started in preemptedNow and startedNow, the step's
   * totals in `planned`; returns the step number.
   */
  private schedule(): number {
    if (this.stepInFlight !== undefined)
      throw new Error(
        `step ${this.stepInFlight} is not completed: complete it (completeStep or finishStep) before planning another`,
      );
    this.endStretch();
    const step = ++this.steps;
    let budget = this.cfg.maxNumBatchedTokens;
    const scheduled = this.inFlightSeqs;
    scheduled.length = 0;
    const preempted = this.preemptedNow;
    const started = this.startedNow;
    preempted.length = 0;
    started.length = 0;
    let queries = 0;
    let hits = 0;

    for (let i = 0; i < this.running.length && budget > 0; ) {
      const seq = this.running[i] as Seq<R>;
      const n = Math.min(seq.numTokens - seq.computed, budget);
      if (n <= 0) {
        i++;
        continue;
      }
      let fits = this.kv.allocate(seq, n);
      while (!fits) {
        const victim = pickVictim(this.running, this.cfg.policy);
        const at = this.running.indexOf(victim);
        this.running.splice(at, 1);
        if (victim.plannedStep === step) {
          scheduled.splice(scheduled.indexOf(victim), 1);
          budget += victim.plannedTokens;
        }
        this.preempt(victim);
        preempted.push(victim);
        if (at < i) i--;
        if (victim === seq) break;
        fits = this.kv.allocate(seq, n);
      }
      // V1 breaks out of the running pass here: requests after one that preempted itself wait for the next step.
      if (!fits) break;
      seq.plannedStep = step;
      seq.plannedTokens = n;
      seq.computed += n;
      scheduled.push(seq);
      budget -= n;
      i++;
    }

    while (
      preempted.length === 0 &&
      budget > 0 &&
      this.waiting.length > 0 &&
      this.running.length < this.cfg.maxNumSeqs
    ) {
      const seq = this.waiting[0] as Seq<R>;
      const hitBlocks = this.kv.cachedPrefix(seq);
      const hitTokens = hitBlocks * this.blockSize;
      const n = Math.min(seq.numTokens - hitTokens, budget);
      seq.computed = hitTokens;
      if (!this.kv.admit(seq, hitBlocks, n)) {
        seq.computed = 0;
        break;
      }
      this.waiting.shift();
      seq.state = 'running';
      this.running.push(seq);
      if (this.prefixCaching) {
        queries += seq.numTokens;
        hits += hitTokens;
      }
      if (!seq.started) {
        seq.started = true;
        started.push(seq);
      }
      seq.plannedStep = step;
      seq.plannedTokens = n;
      seq.computed += n;
      scheduled.push(seq);
      budget -= n;
    }

    const p = this.planned;
    p.decodeSeqs = 0;
    p.decodeContextTokens = 0;
    p.prefillTokens = 0;
    for (let i = 0; i < scheduled.length; i++) {
      const s = scheduled[i] as Seq<R>;
      if (isDecode(s)) {
        p.decodeSeqs++;
        p.decodeContextTokens += s.computed;
      } else p.prefillTokens += s.plannedTokens;
    }
    p.prefixQueryTokens = queries;
    p.prefixHitTokens = hits;
    if (scheduled.length > 0) this.stepInFlight = step;
    this.totals.preemptions += preempted.length;
    this.totals.prefixQueryTokens += queries;
    this.totals.prefixHitTokens += hits;
    return step;
  }

  /**
   * Completes the step in flight: every scheduled request still running that caught up with its tokens samples
   * one, in the step's order, and is left in sampledNow (its finish cause in seq.finish).
   */
  private complete(sample: RequestSampler<R> | undefined): void {
    const step = this.stepInFlight;
    this.stepInFlight = undefined;
    const sampled = this.sampledNow;
    sampled.length = 0;
    let finished = 0;
    const seqs = this.inFlightSeqs;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i] as Seq<R>;
      // Aborted since the step was planned: retired (a request added again under its id is a new Seq).
      if (seq.state !== 'running' || seq.plannedStep !== step) continue;
      if (seq.computed < seq.numTokens) continue;
      // With fixed answers nothing is sampled or stored here, and no answer stops early.
      let stop = false;
      if (sample === undefined) this.kv.countOutput(seq);
      else {
        const s = sample(seq.req, seq.outputs);
        this.kv.appendOutput(seq, s.token);
        stop = s.stop;
      }
      seq.finish = stop
        ? 'stop'
        : seq.outputs >= seq.maxTokens || seq.numTokens >= this.cfg.maxModelLen
          ? 'length'
          : null;
      sampled.push(seq);
      if (seq.finish !== null) {
        this.retire(seq);
        finished++;
      }
    }
    if (finished > 0) this.running = this.running.filter((s) => s.state === 'running');
    this.caughtUp = sampled.length - finished === this.running.length;
  }

  /**
   * Plans the next step inside a decode stretch when one runs or can begin (fixed answers, nothing waiting);
   * false: the full pass plans it (and ends the stretch).
   */
  private planInStretch(): boolean {
    if (this.answerToken === undefined || this.stepInFlight !== undefined || this.waiting.length > 0)
      return false;
    if (this.stretch === undefined) {
      if (!this.caughtUp) return false;
      this.caughtUp = false;
      this.stretch = DecodeStretch.begin(this.running, this.cfg.maxNumBatchedTokens, this.cfg.maxModelLen);
      if (this.stretch === undefined) return false;
    }
    if (!this.stretch.plan(this.kv, this.planned)) return false;
    this.stepInFlight = ++this.steps;
    this.stretchSteps++;
    return true;
  }

  /** Ends the decode stretch, if any: every request's counters as the full pass would have left them. */
  private endStretch(): void {
    const stretch = this.stretch;
    if (stretch === undefined) return;
    this.stretch = undefined;
    if (this.stepInFlight !== undefined) stretch.settle(this.stepInFlight, this.inFlightSeqs);
    else stretch.settle(this.steps);
  }

  private preempt(seq: Seq<R>): void {
    this.kv.release(seq);
    seq.computed = 0;
    seq.plannedStep = -1;
    enqueue(this.waiting, seq, true, this.cfg.policy);
  }

  private retire(seq: Seq<R>): void {
    this.kv.retire(seq);
    seq.state = 'finished';
    this.byId.delete(seq.req.id);
  }
}
