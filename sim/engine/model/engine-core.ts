/**
 * The simulated engine core: admits requests up to --max-num-seqs (FCFS, or lowest `priority` first with
 * --scheduling-policy priority), produces each request's tokens on a timer (first after the TTFT, then one per
 * inter-token latency), ends it at max_tokens (`length`), a stop string or a sampled EOS (`stop`), and keeps the
 * vLLM V1 metrics. Pure: time and timers are injected, no I/O.
 */
import type { Clock } from '../../../common/clock.ts';
import { decode, EOT } from '../../../common/tokenizer.ts';
import { EngineMetrics } from './engine-metrics.ts';
import { contextHash, mixHash, nextToken } from './token-source.ts';

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface EngineCoreConfig {
  maxNumSeqs: number;
  schedulingPolicy: 'fcfs' | 'priority';
  ttftMs: number;
  itlMs: number;
  output: 'random' | 'echo';
  eosProb: number;
  defaultSeed: number;
  kvTokens: number;
  /**
   * Calibrated step times (latency-model.ts) instead of the fixed ttftMs / itlMs. Approximation until the
   * step-synchronous scheduler exists: each request's first token waits one step that prefills its prompt beside
   * the running decodes, and each later token one decode step of the current batch.
   */
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

type Phase = { kind: 'waiting' } | { kind: 'running'; timer: unknown } | { kind: 'done' };

interface Seq {
  req: GenerationRequest;
  sink: GenerationSink;
  phase: Phase;
  arrival: number;
  scheduled: number;
  firstToken: number;
  lastToken: number;
  order: number;
  hash: number;
  generated: number[];
  text: string;
  /** Generated ids whose text is not settled yet (a multi-byte character split across tokens). */
  pending: number[];
}

export class EngineCore {
  readonly metrics = new EngineMetrics();
  private readonly waiting: Seq[] = [];
  private readonly running = new Set<Seq>();
  private order = 0;
  private hung = false;
  /** Called after every generated token with the engine's total so far (fault injection hooks here). */
  onToken: ((totalTokens: number) => void) | undefined;

  constructor(
    private readonly cfg: EngineCoreConfig,
    private readonly clock: Clock,
    private readonly timers: Timers,
  ) {}

  /**
   * A hung engine core: running requests stop producing tokens and nothing new is scheduled, while the API (and
   * /health) stay up, the failure VLLM.md says to supervise by token throughput.
   */
  hang(): void {
    this.hung = true;
    for (const s of this.running) if (s.phase.kind === 'running') this.timers.clear(s.phase.timer);
  }

  get numRunning(): number {
    return this.running.size;
  }
  get numWaiting(): number {
    return this.waiting.length;
  }
  /** Fraction of the KV cache holding the running sequences' contexts. */
  get kvUsage(): number {
    let tokens = 0;
    for (const s of this.running) tokens += s.req.promptIds.length + s.generated.length;
    return Math.min(1, tokens / this.cfg.kvTokens);
  }

  /** Queues a request; returns an abort function (idempotent, a no-op once the request finished). */
  submit(req: GenerationRequest, sink: GenerationSink): () => void {
    const seq: Seq = {
      req,
      sink,
      phase: { kind: 'waiting' },
      arrival: this.clock.now(),
      scheduled: 0,
      firstToken: 0,
      lastToken: 0,
      order: this.order++,
      hash: contextHash(req.seed ?? this.cfg.defaultSeed, req.promptIds),
      generated: [],
      text: '',
      pending: [],
    };
    this.waiting.push(seq);
    this.schedule();
    return () => this.abort(seq);
  }

  private abort(seq: Seq): void {
    if (seq.phase.kind === 'done') return;
    if (seq.phase.kind === 'running') {
      this.timers.clear(seq.phase.timer);
      this.running.delete(seq);
    } else {
      this.waiting.splice(this.waiting.indexOf(seq), 1);
    }
    seq.phase = { kind: 'done' };
    this.schedule();
  }

  private meanContext(): number {
    if (this.running.size === 0) return 0;
    let tokens = 0;
    for (const s of this.running) tokens += s.req.promptIds.length + s.generated.length;
    return tokens / this.running.size;
  }

  private firstTokenDelay(seq: Seq): number {
    const l = this.cfg.latency;
    return l ? l.stepMs(this.running.size, this.meanContext(), seq.req.promptIds.length) : this.cfg.ttftMs;
  }

  private nextTokenDelay(): number {
    const l = this.cfg.latency;
    return l ? l.stepMs(this.running.size, this.meanContext(), 0) : this.cfg.itlMs;
  }

  private schedule(): void {
    if (this.hung) return;
    if (this.cfg.schedulingPolicy === 'priority')
      this.waiting.sort((a, b) => a.req.priority - b.req.priority || a.order - b.order);
    while (this.running.size < this.cfg.maxNumSeqs && this.waiting.length > 0) {
      const seq = this.waiting.shift() as Seq;
      seq.scheduled = this.clock.now();
      seq.phase = {
        kind: 'running',
        timer: this.timers.set(() => this.step(seq), this.firstTokenDelay(seq)),
      };
      this.running.add(seq);
    }
  }

  private step(seq: Seq): void {
    if (seq.phase.kind !== 'running' || this.hung) return;
    const { req } = seq;
    const now = this.clock.now();
    const n = seq.generated.length;
    const id = nextToken({
      mode: this.cfg.output,
      hash: seq.hash,
      promptIds: req.promptIds,
      generated: n,
      eosAllowed: !req.ignoreEos && n >= req.minTokens,
      eosProb: this.cfg.eosProb,
    });
    if (n === 0) {
      seq.firstToken = now;
      this.metrics.ttft.observe((now - seq.arrival) / 1000);
    } else {
      this.metrics.itl.observe((now - seq.lastToken) / 1000);
    }
    seq.lastToken = now;
    seq.generated.push(id);
    seq.hash = mixHash(seq.hash, id);
    this.metrics.generationTokens++;
    this.onToken?.(this.metrics.generationTokens);

    if (id === EOT) {
      seq.sink.token(id, '', { reason: 'stop', stopReason: null });
      this.finish(seq, 'stop', null);
      return;
    }
    // Decode only the unsettled tail (O(1) per token). A token ending in a partial UTF-8 character decodes to
    // U+FFFD: hold its text back until the character completes, as vLLM's incremental detokenizer does.
    seq.pending.push(id);
    const tail = decode(seq.pending);
    const done = !tail.endsWith('\uFFFD');
    if (done) seq.pending = [];
    const settled = done ? seq.text + tail : seq.text;
    for (const s of req.stop) {
      const at = settled.indexOf(s, Math.max(0, seq.text.length - s.length + 1));
      if (s !== '' && at >= 0 && n + 1 >= req.minTokens) {
        seq.sink.token(id, settled.slice(seq.text.length, Math.max(at, seq.text.length)), {
          reason: 'stop',
          stopReason: s,
        });
        seq.text = settled.slice(0, at);
        this.finish(seq, 'stop', s);
        return;
      }
    }
    const last = seq.generated.length >= req.maxTokens;
    seq.sink.token(id, settled.slice(seq.text.length), last ? { reason: 'length', stopReason: null } : null);
    seq.text = settled;
    if (last) {
      this.finish(seq, 'length', null);
      return;
    }
    seq.phase = { kind: 'running', timer: this.timers.set(() => this.step(seq), this.nextTokenDelay()) };
  }

  private finish(seq: Seq, reason: Exclude<FinishReason, 'abort'>, stopReason: string | null): void {
    const now = this.clock.now();
    this.running.delete(seq);
    seq.phase = { kind: 'done' };
    const m = this.metrics;
    m.promptTokens += seq.req.promptIds.length;
    m.success[reason]++;
    m.e2e.observe((now - seq.arrival) / 1000);
    m.queue.observe((seq.scheduled - seq.arrival) / 1000);
    m.prefill.observe((seq.firstToken - seq.scheduled) / 1000);
    m.decode.observe((now - seq.firstToken) / 1000);
    seq.sink.finish(reason, stopReason);
    this.schedule();
  }
}
