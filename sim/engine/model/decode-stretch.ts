/**
 * A decode stretch: the steps after one in which every running request sampled a token, while nothing waits,
 * nothing finishes and no KV block runs short. Every such step schedules the same batch, one decode token per
 * request, in the same order, so the step scheduler plans and completes it from its totals alone:
 *   decode sequences = the batch; decode context = sum of the contexts at the start + batch x steps so far;
 * and only the requests whose next token needs a new KV block or completes a block (once in 16 steps each) are
 * visited, in the step's order, exactly as the full pass would have visited them. Counters of the others (their
 * context, tokens, outputs) lag and are brought up to date when the stretch ends: at the step where a request
 * finishes, where a block cannot be found (preemption), or when a request arrives or is aborted.
 *
 * Pure: the scheduler owns the requests and the KV cache; this only tells it what changes when.
 */
import type { Seq, SequenceKv } from './sequence-kv.ts';

/** The totals of a planned step (StepTotals' figures and the prefix-cache counters), written in place. */
export interface PlannedTotals {
  decodeSeqs: number;
  decodeContextTokens: number;
  prefillTokens: number;
  prefixQueryTokens: number;
  prefixHitTokens: number;
}

/** What a step in a decode stretch delivers besides its token count: no first token, no finished request. */
export const NO_REQUESTS: readonly never[] = Object.freeze([]);

/** A crossing is keyed step x INDEX_SPAN + index in the batch: popping the least visits (step, order). */
const INDEX_SPAN = 2 ** 20;

export class DecodeStretch<S extends Seq> {
  /** Steps planned, and completed, since the stretch began. */
  private planned = 0;
  private completed = 0;
  /** Min-heap of crossing keys: a request's next step whose token its held, registered blocks do not cover. */
  private readonly crossings: number[] = [];

  private constructor(
    /** The running requests, in the scheduler's order: none joins or leaves during a stretch. */
    private readonly batch: readonly S[],
    private readonly contextAtStart: number,
    /** The stretch step at whose completion the first request finishes (max_tokens or max_model_len). */
    private readonly finishAt: number,
  ) {}

  /**
   * The stretch that starts at the next step, or undefined when some running request is not one decode away
   * (mid-prefill), the batch exceeds the step's token budget, or nothing runs.
   */
  static begin<S extends Seq>(running: readonly S[], tokenBudget: number, maxModelLen: number) {
    if (running.length === 0 || running.length > tokenBudget || running.length >= INDEX_SPAN)
      return undefined;
    let context = 0;
    let finishAt = Number.POSITIVE_INFINITY;
    for (let i = 0; i < running.length; i++) {
      const seq = running[i] as S;
      if (seq.numTokens - seq.computed !== 1 || seq.outputs === 0) return undefined;
      context += seq.computed;
      finishAt = Math.min(finishAt, seq.maxTokens - seq.outputs, maxModelLen - seq.numTokens);
    }
    const stretch = new DecodeStretch(running, context, finishAt);
    for (let i = 0; i < running.length; i++) stretch.pushCrossing(running[i] as S, i);
    return stretch;
  }

  get size(): number {
    return this.batch.length;
  }

  /**
   * Plans the next step: the KV blocks of the requests crossing a block boundary in it, in the batch's order,
   * and the step's totals. False when one finds no free block: the blocks taken before it stay taken, as in the
   * full pass, which then plans this step again (it finds them held) and preempts.
   */
  plan(kv: SequenceKv, totals: PlannedTotals): boolean {
    const step = this.planned + 1;
    const heap = this.crossings;
    while (heap.length > 0 && (heap[0] as number) < (step + 1) * INDEX_SPAN) {
      const i = (heap[0] as number) % INDEX_SPAN;
      const seq = this.batch[i] as S;
      // seq.computed lags by step - 1: this is the token the full pass would allocate, computed + 1.
      if (!kv.allocate(seq, step)) return false;
      popMin(heap);
      this.pushCrossing(seq, i);
    }
    this.planned = step;
    totals.decodeSeqs = this.batch.length;
    totals.decodeContextTokens = this.contextAtStart + this.batch.length * step;
    totals.prefillTokens = 0;
    totals.prefixQueryTokens = 0;
    totals.prefixHitTokens = 0;
    return true;
  }

  /** Completes the step planned last; false when a request finishes in it (the full completion handles it). */
  complete(): boolean {
    if (this.planned === this.finishAt) return false;
    this.completed = this.planned;
    return true;
  }

  /**
   * Brings every request's counters up to date, as the full pass would have left them after `lastStep`: the last
   * step completed, or, given `inFlight` (filled with the step's requests in order), the step planned and in flight.
   */
  settle(lastStep: number, inFlight?: S[]): void {
    const done = inFlight ? this.planned - 1 : this.completed;
    if (done === 0 && !inFlight) return;
    const batch = this.batch;
    for (let i = 0; i < batch.length; i++) {
      const seq = batch[i] as S;
      seq.computed += inFlight ? done + 1 : done;
      seq.numTokens += done;
      seq.outputs += done;
      seq.plannedStep = lastStep;
      seq.plannedTokens = 1;
    }
    if (inFlight) {
      // Overwritten in place: emptied first, the list gave up its backing store and grew a new one.
      for (let i = 0; i < batch.length; i++) inFlight[i] = batch[i] as S;
      inFlight.length = batch.length;
    }
  }

  private pushCrossing(seq: S, i: number): void {
    // Lagging counters: the request's context at stretch step j is seq.computed + j.
    const step = seq.quietEnd - seq.computed + 1;
    pushHeap(this.crossings, step * INDEX_SPAN + i);
  }
}

function pushHeap(heap: number[], key: number): void {
  let i = heap.length;
  heap.push(key);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if ((heap[parent] as number) <= key) break;
    heap[i] = heap[parent] as number;
    i = parent;
  }
  heap[i] = key;
}

function popMin(heap: number[]): void {
  const last = heap.pop() as number;
  const n = heap.length;
  if (n === 0) return;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const m = r < n && (heap[r] as number) < (heap[l] as number) ? r : l;
    if ((heap[m] as number) >= last) break;
    heap[i] = heap[m] as number;
    i = m;
  }
  heap[i] = last;
}
