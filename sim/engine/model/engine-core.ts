/**
 * The simulated engine core: runs the step scheduler (step-scheduler.ts, vLLM V1's) one step after another
 * on injected timers while there is work, each step lasting what the latency model says for its batch (or, with
 * no calibration, a fixed TTFT for a step that prefills and a fixed inter-token latency for a decode-only one).
 * It turns each sampled token into text (seeded random or echo), ends requests at max_tokens (`length`), a stop
 * string or a sampled EOS (`stop`), and counts vLLM's V1 metrics from these events. Pure: clock and timers are
 * injected, no I/O.
 *
 * Metrics follow vLLM 0.11 (VLLM.md): TTFT and ITL are observed as tokens come; queue, prefill, decode and e2e
 * times and request_success_total only when a request finishes with stop or length. An aborted request is in
 * none of those (vLLM's abort path records no per-request stats, vllm-project/vllm#31503: the
 * finished_reason="abort" series exists and stays 0); its prompt tokens count once its prefill completed.
 */
import type { Clock } from '../../../common/clock.ts';
import { BLOCK_SIZE } from '../../../common/hardware/memory.ts';
import { decode, EOT } from '../../../common/tokenizer.ts';
import { EngineMetrics } from './engine-metrics.ts';
import { meanDecodeContext, type SampledToken, type StepPlan, StepScheduler } from './step-scheduler.ts';
import { contextHash, mixHash, nextToken } from './token-source.ts';

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface EngineCoreConfig {
  maxNumSeqs: number;
  /** Per-step token budget; vLLM's default is 8192 on >= 70 GiB GPUs (VLLM.md). */
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  schedulingPolicy: 'fcfs' | 'priority';
  ttftMs: number;
  itlMs: number;
  output: 'random' | 'echo';
  eosProb: number;
  defaultSeed: number;
  /** KV cache size in tokens (a whole number of blocks is used). */
  kvTokens: number;
  /** Tokens per KV block (--block-size); default 16. */
  blockSize?: number;
  enablePrefixCaching?: boolean;
  /** Calibrated step times (latency-model.ts) instead of the fixed ttftMs / itlMs. */
  latency?: { stepMs(decodeSeqs: number, meanContext: number, prefillTokens: number): number };
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationRequest {
  id: string;
  promptIds: readonly number[];
  maxTokens: number;
  minTokens: number;
  ignoreEos: boolean;
  stop: readonly string[];
  seed: number | undefined;
  priority: number;
}

export interface GenerationSink {
  /**
   * One generated token: its id, the text it adds (may be '' for EOS or a partial character) and, on the last
   * token, how the request ends (vLLM puts finish_reason on the chunk of the last token).
   */
  token(id: number, text: string, end: End | null): void;
  finish(reason: Exclude<FinishReason, 'abort'>, stopReason: string | null): void;
}

export interface End {
  reason: Exclude<FinishReason, 'abort'>;
  stopReason: string | null;
}

/** A request the engine can never run (it exceeds max_model_len or the whole KV cache). */
export class RequestRefusedError extends Error {
  override readonly name = 'RequestRefusedError';
}

interface Seq {
  readonly req: GenerationRequest;
  readonly sink: GenerationSink;
  done: boolean;
  readonly arrival: number;
  scheduled: number;
  firstToken: number;
  lastToken: number;
  hash: number;
  generated: number;
  text: string;
  /** Generated ids whose text is not settled yet (a multi-byte character split across tokens). */
  pending: number[];
  /** What the token sampled this step adds, and the stop string that ended it. */
  delta: string;
  stopReason: string | null;
}

const DEFAULT_BATCHED_TOKENS = 8192;
const DEFAULT_MAX_MODEL_LEN = 131072;

export class EngineCore {
  readonly metrics = new EngineMetrics();
  private readonly scheduler: StepScheduler;
  private readonly seqs = new Map<string, Seq>();
  /**
   * Requests submitted since the running step was planned, in arrival order, not yet in the scheduler: each
   * joins the first step that starts at or after its arrival. A step planned late (its predecessor's timer fired
   * after it was due) still starts at that due time, so it must not take a request that arrived after it.
   */
  private readonly arrivals: string[] = [];
  private nextId = 0;
  private inFlight: unknown = undefined;
  private hung = false;
  /** Called after every generated token with the engine's total so far (fault injection hooks here). */
  onToken: ((totalTokens: number) => void) | undefined;

  constructor(
    private readonly cfg: EngineCoreConfig,
    private readonly clock: Clock,
    private readonly timers: Timers,
  ) {
    this.scheduler = new StepScheduler({
      maxNumSeqs: cfg.maxNumSeqs,
      maxNumBatchedTokens: cfg.maxNumBatchedTokens ?? DEFAULT_BATCHED_TOKENS,
      maxModelLen: cfg.maxModelLen ?? DEFAULT_MAX_MODEL_LEN,
      policy: cfg.schedulingPolicy,
      numBlocks: Math.max(1, Math.floor(cfg.kvTokens / (cfg.blockSize ?? BLOCK_SIZE))),
      blockSize: cfg.blockSize ?? BLOCK_SIZE,
      enablePrefixCaching: cfg.enablePrefixCaching ?? true,
    });
  }

  /**
   * A hung engine core: running requests stop producing tokens and nothing new is scheduled, while the API (and
   * /health) stay up, the failure VLLM.md says to supervise by token throughput.
   */
  hang(): void {
    this.hung = true;
    if (this.inFlight !== undefined) this.timers.clear(this.inFlight);
    this.inFlight = undefined;
  }

  get numRunning(): number {
    return this.scheduler.numRunning;
  }
  get numWaiting(): number {
    return this.scheduler.numWaiting + this.arrivals.length;
  }
  /** vLLM's kv_cache_usage_perc: the fraction of KV blocks held by requests. */
  get kvUsage(): number {
    return this.scheduler.kvUsage;
  }

  /** Why a request with this many prompt tokens and max_tokens can never run here, or null. */
  refusal(promptTokens: number, maxTokens: number): string | null {
    return this.scheduler.refusal(promptTokens, maxTokens);
  }

  /**
   * Queues a request; returns an abort function (idempotent, a no-op once the request finished). Throws
   * RequestRefusedError for a request that could never run.
   */
  submit(req: GenerationRequest, sink: GenerationSink): () => void {
    const why = this.scheduler.refusal(req.promptIds.length, req.maxTokens);
    if (why !== null) throw new RequestRefusedError(why);
    const key = String(this.nextId++);
    const seq: Seq = {
      req,
      sink,
      done: false,
      arrival: this.clock.now(),
      scheduled: 0,
      firstToken: 0,
      lastToken: 0,
      hash: contextHash(req.seed ?? this.cfg.defaultSeed, req.promptIds),
      generated: 0,
      text: '',
      pending: [],
      delta: '',
      stopReason: null,
    };
    this.seqs.set(key, seq);
    this.arrivals.push(key);
    // An idle engine plans its next step on the next turn (vLLM's engine loop drains its input queue before it
    // schedules). The step starts when this request came, however late the turn comes on a busy host, and takes
    // what arrived by then: as in the cluster simulator, a request a moment later waits for the next step.
    if (this.inFlight === undefined && !this.hung)
      this.inFlight = this.timers.set(() => {
        this.inFlight = undefined;
        this.startStep(seq.arrival);
      }, 0);
    return () => {
      if (seq.done) return;
      seq.done = true;
      this.seqs.delete(key);
      const at = this.arrivals.indexOf(key);
      if (at >= 0) this.arrivals.splice(at, 1);
      else this.scheduler.abort(key);
    };
  }

  private stepMs(plan: StepPlan): number {
    const l = this.cfg.latency;
    if (l) return l.stepMs(plan.decodeSeqs, meanDecodeContext(plan), plan.prefillTokens);
    return plan.prefillTokens > 0 ? this.cfg.ttftMs : this.cfg.itlMs;
  }

  /** Hands the scheduler the requests that arrived by `t` (vLLM's engine loop drains its input queue). */
  private admitArrivals(t: number): void {
    let n = 0;
    for (const key of this.arrivals) {
      const seq = this.seqs.get(key) as Seq;
      if (seq.arrival > t) break;
      const { req } = seq;
      this.scheduler.add({
        id: key,
        promptIds: req.promptIds,
        maxTokens: req.maxTokens,
        priority: req.priority,
      });
      n++;
    }
    this.arrivals.splice(0, n);
  }

  /**
   * Plans the next step if the engine is idle and has work, and ends it `stepMs` after it starts. Back-to-back
   * steps start when the previous one was due (`startAt`), not when its outputs were handed out, so the
   * simulator's own CPU time, or a timer that fired late on a busy host, does not stretch simulated time (the
   * latency model already charges vLLM's CPU side; a GPU's steps do not get longer because a host is busy). Such
   * a step takes only the requests that arrived by its start; with none to run then, the engine idles until the
   * next arrival and starts there.
   */
  private startStep(startAt: number): void {
    if (this.hung || this.inFlight !== undefined) return;
    this.admitArrivals(startAt);
    const next = this.arrivals[0];
    if (!this.scheduler.hasWork && next !== undefined) {
      startAt = (this.seqs.get(next) as Seq).arrival;
      this.admitArrivals(startAt);
    }
    if (!this.scheduler.hasWork) return;
    const plan = this.scheduler.nextStep();
    if (plan.scheduled.length === 0) return;
    const now = this.clock.now();
    for (const key of plan.started) {
      const seq = this.seqs.get(key);
      if (seq) seq.scheduled = startAt;
    }
    const m = this.metrics;
    m.preemptions += plan.preempted.length;
    m.prefixQueries += plan.prefixQueryTokens;
    m.prefixHits += plan.prefixHitTokens;
    const due = startAt + this.stepMs(plan);
    this.inFlight = this.timers.set(() => this.endStep(plan, due), Math.max(0, due - now));
  }

  private endStep(plan: StepPlan, due: number): void {
    this.inFlight = undefined;
    if (this.hung) return;
    const { sampled } = this.scheduler.completeStep(plan, (key, index) => this.sample(key, index));
    const now = this.clock.now();
    for (const t of sampled) {
      if (this.hung) return;
      this.emit(t, now);
    }
    this.startStep(due);
  }

  /** The request's next token and its text; stop when it is EOS or completes a stop string. */
  private sample(key: string, index: number): { token: number; stop: boolean } {
    const seq = this.seqs.get(key) as Seq;
    const { req } = seq;
    const id = nextToken({
      mode: this.cfg.output,
      hash: seq.hash,
      promptIds: req.promptIds,
      generated: index,
      eosAllowed: !req.ignoreEos && index >= req.minTokens,
      eosProb: this.cfg.eosProb,
    });
    seq.hash = mixHash(seq.hash, id);
    seq.generated = index + 1;
    if (id === EOT) {
      seq.delta = '';
      seq.stopReason = null;
      return { token: id, stop: true };
    }
    // Decode only the unsettled tail (O(1) per token). A token ending in a partial UTF-8 character decodes to
    // U+FFFD: hold its text back until the character completes, as vLLM's incremental detokenizer does.
    seq.pending.push(id);
    const tail = decode(seq.pending);
    const settledNow = !tail.endsWith('\uFFFD');
    if (settledNow) seq.pending = [];
    const settled = settledNow ? seq.text + tail : seq.text;
    if (index + 1 >= req.minTokens)
      for (const s of req.stop) {
        const at = s === '' ? -1 : settled.indexOf(s, Math.max(0, seq.text.length - s.length + 1));
        if (at >= 0) {
          seq.delta = settled.slice(seq.text.length, Math.max(at, seq.text.length));
          seq.text = settled.slice(0, at);
          seq.stopReason = s;
          return { token: id, stop: true };
        }
      }
    seq.delta = settled.slice(seq.text.length);
    seq.text = settled;
    seq.stopReason = null;
    return { token: id, stop: false };
  }

  private emit(t: SampledToken, now: number): void {
    const seq = this.seqs.get(t.id);
    if (!seq) return;
    const m = this.metrics;
    if (t.first) {
      seq.firstToken = now;
      m.ttft.observe((now - seq.arrival) / 1000);
      m.promptTokens += seq.req.promptIds.length;
    } else {
      m.itl.observe((now - seq.lastToken) / 1000);
    }
    seq.lastToken = now;
    m.generationTokens++;
    this.onToken?.(m.generationTokens);
    const end = t.finish === null ? null : { reason: t.finish, stopReason: seq.stopReason };
    seq.sink.token(t.token, seq.delta, end);
    if (end === null) return;
    seq.done = true;
    this.seqs.delete(t.id);
    m.success[end.reason]++;
    m.e2e.observe((now - seq.arrival) / 1000);
    m.queue.observe((seq.scheduled - seq.arrival) / 1000);
    m.prefill.observe((seq.firstToken - seq.scheduled) / 1000);
    m.decode.observe((now - seq.firstToken) / 1000);
    seq.sink.finish(end.reason, end.stopReason);
  }
}
