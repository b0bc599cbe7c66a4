/**
 * The contract of the step scheduler (step-scheduler.ts): its configuration, the requests it takes, the plan of
 * one engine step and what completing a step produced. Types only, shared by the engine simulator and the
 * cluster simulator.
 */
export interface StepSchedulerConfig {
  maxNumSeqs: number;
  /** Token budget of one step (--max-num-batched-tokens). */
  maxNumBatchedTokens: number;
  maxModelLen: number;
  policy: 'fcfs' | 'priority';
  /** KV cache blocks of the group (common/hardware groupMemory's kvBlocks). */
  numBlocks: number;
  blockSize?: number;
  /** On by default in V1 (--no-enable-prefix-caching turns it off). */
  enablePrefixCaching?: boolean;
}

/**
 * A prompt as the step scheduler takes it, in one of two forms:
 *   - its token ids (promptIds), optionally with their full blocks' hashes (blockHashes) when the caller already
 *     computed them (the engine simulator; the cluster simulator when its engines hash prompts themselves);
 *   - hashed: its length (promptLength), its full blocks' hashes (blockHashes) and only the token ids after its
 *     last full block (promptTail). The scheduler reads a prompt's ids only past the hashes it was given (the
 *     partial last block, which the answer's first block completes), so the cluster simulator, thousands of
 *     8k-token prompts in flight, does not keep the rest.
 * A prefix hit needs equal hashes, so one scheduler's requests all come with hashes or all without.
 */
export interface SchedulerPrompt {
  /** Token ids (an array, or a typed array). */
  readonly promptIds?: ArrayLike<number>;
  /** Chained hashes of the prompt's full blocks (common/block-hash.ts), if known; the hashed form needs them. */
  readonly blockHashes?: ArrayLike<number>;
  /** The hashed form: tokens in the prompt. */
  readonly promptLength?: number;
  /** The hashed form: the token ids after the prompt's last full block (promptLength % block size of them). */
  readonly promptTail?: ArrayLike<number>;
}

export interface SchedulerRequest extends SchedulerPrompt {
  readonly id: string;
  readonly maxTokens: number;
  /**
   * Chained hashes of the full blocks after the prompt's, of the prompt followed by its whole answer (maxTokens
   * tokens): floor((prompt + maxTokens) / block size) - floor(prompt / block size) of them, the block straddling
   * prompt and answer first. Only when the answer is a fixed function of the request that the caller knows too
   * (the scheduler's answerToken) and the prompt came with blockHashes: the scheduler then hashes none of the
   * answer's blocks (the cluster simulator hashes them ahead, on another thread). Never for sampled answers.
   */
  readonly answerBlockHashes?: ArrayLike<number>;
  /** Lower runs earlier under the priority policy. */
  readonly priority: number;
}

/** One request's share of a step. */
export interface ScheduledChunk {
  readonly id: string;
  /** Tokens computed for it this step (1 for a decode). */
  readonly tokens: number;
  /** Its KV context once this step ran (what its attention reads). */
  readonly context: number;
  /** A decode: one new token after all earlier ones are in the KV cache. */
  readonly decode: boolean;
}

export interface StepPlan {
  readonly step: number;
  readonly scheduled: readonly ScheduledChunk[];
  readonly decodeSeqs: number;
  /** Sum of the decodes' contexts (meanDecodeContext divides it). */
  readonly decodeContextTokens: number;
  /** Tokens of prefill chunks (prompts, and recomputation after preemption). */
  readonly prefillTokens: number;
  /** Requests preempted (by recompute) while planning this step, in order. */
  readonly preempted: readonly string[];
  /** Requests scheduled for the first time (their queue time ends). */
  readonly started: readonly string[];
  /** Prompt tokens looked up in the prefix cache, and the tokens found there (vLLM's counters, in tokens). */
  readonly prefixQueryTokens: number;
  readonly prefixHitTokens: number;
}

export type FinishCause = 'stop' | 'length';

/** The token a request samples at `outputIndex`, and whether it ends the request (EOS or a stop string). */
export type Sampler = (id: string, outputIndex: number) => { token: number; stop: boolean };

export interface SampledToken {
  readonly id: string;
  readonly token: number;
  /** Its first output token (time to first token ends). */
  readonly first: boolean;
  readonly finish: FinishCause | null;
}

export interface StepOutcome {
  readonly sampled: readonly SampledToken[];
}

/**
 * A planned step as the cluster simulator reads it (StepScheduler.planStep): what the latency model needs, no
 * chunk per request. The same scheduling pass as nextStep's StepPlan, with the same totals.
 */
export interface StepTotals {
  readonly step: number;
  /** Requests in the step (0: nothing to do). */
  readonly scheduledSeqs: number;
  readonly decodeSeqs: number;
  readonly decodeContextTokens: number;
  readonly prefillTokens: number;
}

/** The sampler of planStep's steps: given the request itself (a subtype may carry what sampling needs). */
export type RequestSampler<R extends SchedulerRequest> = (
  req: R,
  outputIndex: number,
) => { token: number; stop: boolean };

/** What completing a planStep step produced, without a record per token. */
export interface StepDelivery<R extends SchedulerRequest> {
  /** Tokens sampled (one per request that caught up with its tokens). */
  readonly sampledTokens: number;
  /** Requests whose first output token this step sampled, in the step's order. */
  readonly firstTokens: readonly R[];
  readonly finished: readonly R[];
}

export function meanDecodeContext(plan: Pick<StepPlan, 'decodeSeqs' | 'decodeContextTokens'>): number {
  return plan.decodeSeqs > 0 ? plan.decodeContextTokens / plan.decodeSeqs : 0;
}
