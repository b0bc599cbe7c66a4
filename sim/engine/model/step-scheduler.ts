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
 */
import { BLOCK_SIZE } from '../../../common/hardware/memory.ts';
import { chainBlockHash, KvBlockPool } from './kv-block-pool.ts';
import type {
  FinishCause,
  SampledToken,
  Sampler,
  ScheduledChunk,
  SchedulerRequest,
  StepOutcome,
  StepPlan,
  StepSchedulerConfig,
} from './step-plan.ts';

export { meanDecodeContext } from './step-plan.ts';
export type {
  FinishCause,
  SampledToken,
  Sampler,
  ScheduledChunk,
  SchedulerRequest,
  StepOutcome,
  StepPlan,
  StepSchedulerConfig,
};

interface Seq {
  readonly req: SchedulerRequest;
  readonly arrival: number;
  state: 'waiting' | 'running' | 'finished';
  /** Tokens whose KV is computed (or scheduled to be, during planning). */
  computed: number;
  readonly output: number[];
  /** Prompt + output tokens, kept here because every step reads it for every running request. */
  numTokens: number;
  /** KV blocks held, in token order. */
  readonly blocks: number[];
  /** Chained hashes of the full blocks known so far. */
  readonly hashes: number[];
  /** How many of `blocks` are registered in the prefix cache. */
  registered: number;
  started: boolean;
  /** The step that scheduled it last, and its tokens there. */
  plannedStep: number;
  plannedTokens: number;
}

const numTokens = (s: Seq) => s.numTokens;

/** No prefix-hit blocks: allocate()'s argument for running requests, shared so a step allocates nothing. */
const NO_BLOCKS: readonly number[] = [];

export class StepScheduler {
  private readonly pool: KvBlockPool;
  private readonly blockSize: number;
  private readonly prefixCaching: boolean;
  private readonly byId = new Map<string, Seq>();
  private waiting: Seq[] = [];
  private running: Seq[] = [];
  private arrivals = 0;
  private steps = 0;
  /** The non-empty step planned and not completed yet: steps run one at a time, as on the GPU. */
  private stepInFlight: number | undefined;
  /** Its requests, in the order of its chunks (completeStep reads them instead of looking each id up). */
  private inFlightSeqs: Seq[] = [];
  /** Totals since start (vLLM's counters). */
  readonly totals = { preemptions: 0, prefixQueryTokens: 0, prefixHitTokens: 0 };

  constructor(private readonly cfg: StepSchedulerConfig) {
    this.pool = new KvBlockPool(cfg.numBlocks);
    this.blockSize = cfg.blockSize ?? BLOCK_SIZE;
    this.prefixCaching = cfg.enablePrefixCaching ?? true;
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
    return this.pool.usage;
  }
  get kvTokens(): number {
    return this.cfg.numBlocks * this.blockSize;
  }

  /**
   * Why a request can never run here, or null: its whole context must fit the KV cache alone (vLLM checks
   * max_model_len against the cache at start-up) and max_model_len.
   */
  refusal(promptTokens: number, maxTokens: number): string | null {
    if (promptTokens < 1) return 'the prompt is empty';
    const total = promptTokens + maxTokens;
    if (total > this.cfg.maxModelLen)
      return `${total} tokens (prompt + max_tokens) exceed max_model_len ${this.cfg.maxModelLen}`;
    if (Math.ceil(total / this.blockSize) > this.cfg.numBlocks)
      return `${total} tokens (prompt + max_tokens) exceed the KV cache (${this.kvTokens} tokens)`;
    return null;
  }

  add(req: SchedulerRequest): void {
    if (this.byId.has(req.id)) throw new RangeError(`request ${req.id} is already scheduled`);
    const why = this.refusal(req.promptIds.length, req.maxTokens);
    if (why !== null) throw new RangeError(`request ${req.id}: ${why}`);
    const full = Math.floor(req.promptIds.length / this.blockSize);
    if (req.blockHashes !== undefined && req.blockHashes.length !== full)
      throw new RangeError(
        `request ${req.id}: ${req.blockHashes.length} block hashes for a prompt of ${full} full blocks`,
      );
    const seq: Seq = {
      req,
      arrival: this.arrivals++,
      state: 'waiting',
      computed: 0,
      output: [],
      numTokens: req.promptIds.length,
      blocks: [],
      hashes: req.blockHashes ? req.blockHashes.slice() : [],
      registered: 0,
      started: false,
      plannedStep: -1,
      plannedTokens: 0,
    };
    this.byId.set(req.id, seq);
    this.enqueue(seq, false);
  }

  /**
   * Prompt tokens of `promptIds` the prefix cache holds right now, as admission would find them (full blocks, at
   * most all but the last token). No side effect: the cluster simulator's oracle router asks every group.
   * `blockHashes`: the prompt's block hashes, when its requests are added with them (SchedulerRequest).
   */
  cachedPrefixTokens(promptIds: ArrayLike<number>, blockHashes?: readonly number[]): number {
    if (!this.prefixCaching) return 0;
    const full = Math.floor((promptIds.length - 1) / this.blockSize);
    let hash = 0;
    for (let k = 0; k < full; k++) {
      hash =
        blockHashes !== undefined
          ? (blockHashes[k] as number)
          : chainBlockHash(hash, (i) => promptIds[i] as number, k * this.blockSize, this.blockSize);
      if (this.pool.lookup(hash) === undefined) return k * this.blockSize;
    }
    return full * this.blockSize;
  }

  /** Drops a request wherever it is; false if it is unknown or already finished. */
  abort(id: string): boolean {
    const seq = this.byId.get(id);
    if (!seq) return false;
    if (seq.state === 'waiting') this.waiting.splice(this.waiting.indexOf(seq), 1);
    else if (seq.state === 'running') this.running.splice(this.running.indexOf(seq), 1);
    this.retire(seq);
    return true;
  }

  nextStep(): StepPlan {
    if (this.stepInFlight !== undefined)
      throw new Error(
        `step ${this.stepInFlight} is not completed: call completeStep(plan) before nextStep()`,
      );
    const step = ++this.steps;
    let budget = this.cfg.maxNumBatchedTokens;
    const scheduled: Seq[] = [];
    const preempted: string[] = [];
    const started: string[] = [];
    let queries = 0;
    let hits = 0;

    for (let i = 0; i < this.running.length && budget > 0; ) {
      const seq = this.running[i] as Seq;
      const n = Math.min(numTokens(seq) - seq.computed, budget);
      if (n <= 0) {
        i++;
        continue;
      }
      let fits = this.allocate(seq, NO_BLOCKS, n);
      while (!fits) {
        const victim = this.pickVictim();
        const at = this.running.indexOf(victim);
        this.running.splice(at, 1);
        if (victim.plannedStep === step) {
          scheduled.splice(scheduled.indexOf(victim), 1);
          budget += victim.plannedTokens;
        }
        this.preempt(victim);
        preempted.push(victim.req.id);
        if (at < i) i--;
        if (victim === seq) break;
        fits = this.allocate(seq, NO_BLOCKS, n);
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
      const seq = this.waiting[0] as Seq;
      const cachedBlocks = this.cachedPrefix(seq);
      const hitTokens = cachedBlocks.length * this.blockSize;
      const n = Math.min(numTokens(seq) - hitTokens, budget);
      seq.computed = hitTokens;
      if (!this.allocate(seq, cachedBlocks, n)) {
        seq.computed = 0;
        break;
      }
      this.waiting.shift();
      seq.state = 'running';
      this.running.push(seq);
      if (this.prefixCaching) {
        queries += numTokens(seq);
        hits += hitTokens;
      }
      if (!seq.started) {
        seq.started = true;
        started.push(seq.req.id);
      }
      seq.plannedStep = step;
      seq.plannedTokens = n;
      seq.computed += n;
      scheduled.push(seq);
      budget -= n;
    }

    let decodeSeqs = 0;
    let decodeContextTokens = 0;
    let prefillTokens = 0;
    const chunks = scheduled.map((s): ScheduledChunk => {
      const decode = s.plannedTokens === 1 && s.output.length > 0 && s.computed === numTokens(s);
      if (decode) {
        decodeSeqs++;
        decodeContextTokens += s.computed;
      } else prefillTokens += s.plannedTokens;
      return { id: s.req.id, tokens: s.plannedTokens, context: s.computed, decode };
    });
    if (chunks.length > 0) {
      this.stepInFlight = step;
      this.inFlightSeqs = scheduled;
    }
    this.totals.preemptions += preempted.length;
    this.totals.prefixQueryTokens += queries;
    this.totals.prefixHitTokens += hits;
    return {
      step,
      scheduled: chunks,
      decodeSeqs,
      decodeContextTokens,
      prefillTokens,
      preempted,
      started,
      prefixQueryTokens: queries,
      prefixHitTokens: hits,
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
    this.stepInFlight = undefined;
    const seqs = this.inFlightSeqs;
    this.inFlightSeqs = [];
    const sampled: SampledToken[] = [];
    let finished = false;
    for (const seq of seqs) {
      // Aborted since nextStep: retired (a request added again under its id is a new Seq).
      if (seq.state !== 'running' || seq.plannedStep !== plan.step) continue;
      if (seq.computed < numTokens(seq)) continue;
      const index = seq.output.length;
      const s = sample(seq.req.id, index);
      seq.output.push(s.token);
      seq.numTokens++;
      const finish: FinishCause | null = s.stop
        ? 'stop'
        : seq.output.length >= seq.req.maxTokens || numTokens(seq) >= this.cfg.maxModelLen
          ? 'length'
          : null;
      sampled.push({ id: seq.req.id, token: s.token, first: index === 0, finish });
      if (finish !== null) {
        this.retire(seq);
        finished = true;
      }
    }
    if (finished) this.running = this.running.filter((s) => s.state === 'running');
    return { sampled };
  }

  private enqueue(seq: Seq, front: boolean): void {
    seq.state = 'waiting';
    if (this.cfg.policy === 'priority') {
      // Ordered by (priority, arrival), like V1's heap; a preempted request keeps its place by arrival.
      let lo = 0;
      let hi = this.waiting.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const w = this.waiting[mid] as Seq;
        if (
          w.req.priority < seq.req.priority ||
          (w.req.priority === seq.req.priority && w.arrival < seq.arrival)
        )
          lo = mid + 1;
        else hi = mid;
      }
      this.waiting.splice(lo, 0, seq);
    } else if (front) this.waiting.unshift(seq);
    else this.waiting.push(seq);
  }

  private pickVictim(): Seq {
    if (this.cfg.policy === 'fcfs') return this.running[this.running.length - 1] as Seq;
    let victim = this.running[0] as Seq;
    for (const s of this.running)
      if (
        s.req.priority > victim.req.priority ||
        (s.req.priority === victim.req.priority && s.arrival > victim.arrival)
      )
        victim = s;
    return victim;
  }

  private preempt(seq: Seq): void {
    this.pool.release(seq.blocks);
    seq.blocks.length = 0;
    seq.registered = 0;
    seq.computed = 0;
    seq.plannedStep = -1;
    this.enqueue(seq, true);
  }

  private retire(seq: Seq): void {
    this.pool.release(seq.blocks);
    seq.blocks.length = 0;
    seq.state = 'finished';
    this.byId.delete(seq.req.id);
  }

  private tokenAt(seq: Seq, i: number): number {
    const p = seq.req.promptIds;
    return i < p.length ? (p[i] as number) : (seq.output[i - p.length] as number);
  }

  /** Hashes of the first `count` full blocks of the request's tokens. */
  private hashesUpTo(seq: Seq, count: number): readonly number[] {
    for (let k = seq.hashes.length; k < count; k++)
      seq.hashes.push(
        chainBlockHash(
          k === 0 ? 0 : (seq.hashes[k - 1] as number),
          (i) => this.tokenAt(seq, i),
          k * this.blockSize,
          this.blockSize,
        ),
      );
    return seq.hashes;
  }

  /** The cached blocks holding the longest prefix of the request, leaving at least its last token to compute. */
  private cachedPrefix(seq: Seq): number[] {
    if (!this.prefixCaching) return [];
    const full = Math.floor((numTokens(seq) - 1) / this.blockSize);
    const hashes = this.hashesUpTo(seq, full);
    const found: number[] = [];
    for (let k = 0; k < full; k++) {
      const b = this.pool.lookup(hashes[k] as number);
      if (b === undefined) break;
      found.push(b);
    }
    return found;
  }

  /**
   * Takes blocks for `n` more tokens after seq.computed (prefix-hit blocks first); false, holding nothing new,
   * when the free queue is too short. Full blocks are registered in the prefix cache as soon as they are
   * scheduled, as V1 does.
   */
  private allocate(seq: Seq, cachedBlocks: readonly number[], n: number): boolean {
    const end = seq.computed + n;
    // Most decode steps: the token lands in a block already held and completes none, so nothing changes.
    if (
      cachedBlocks.length === 0 &&
      end <= seq.blocks.length * this.blockSize &&
      Math.floor(end / this.blockSize) <= seq.registered
    )
      return true;
    const needed = Math.ceil((seq.computed + n) / this.blockSize) - seq.blocks.length - cachedBlocks.length;
    let reclaimed = 0;
    for (const b of cachedBlocks) if (this.pool.isFree(b)) reclaimed++;
    if (needed + reclaimed > this.pool.numFree) return false;
    for (const b of cachedBlocks) {
      this.pool.touch(b);
      seq.blocks.push(b);
    }
    seq.registered = Math.max(seq.registered, cachedBlocks.length);
    for (let k = 0; k < needed; k++) seq.blocks.push(this.pool.allocate());
    // Most decode steps complete no block: nothing to hash or register.
    const full = Math.floor((seq.computed + n) / this.blockSize);
    if (this.prefixCaching && full > seq.registered) {
      const hashes = this.hashesUpTo(seq, full);
      for (let k = seq.registered; k < full; k++)
        this.pool.register(seq.blocks[k] as number, hashes[k] as number);
      seq.registered = Math.max(seq.registered, full);
    }
    return true;
  }
}
