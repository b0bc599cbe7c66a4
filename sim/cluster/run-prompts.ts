/**
 * Where a run of the cluster simulator takes its requests' prompts from: built on the simulator's own thread as
 * each request is dispatched (localPrompts, the default), or built ahead on a thread of their own
 * (prompt-thread.ts), which also hashes the blocks of each request's answer so its engine need not.
 */
import { type Prompt, PromptCache } from './prompt-cache.ts';
import type { SimRequest } from './workload.ts';

/** One run's prompts. */
export interface RunPrompts {
  /** The prompt of a request being dispatched (asked again when a dispatch is refused and retried). */
  prompt(req: SimRequest): Prompt;
  /**
   * The hashes of the full blocks of the request's prompt + answer after its prompt's
   * (step-plan.ts SchedulerRequest.answerBlockHashes), when they were made ahead.
   */
  answerBlocks(req: SimRequest): Float64Array | undefined;
  /** The prompt's request finished: nothing reads it any more. */
  release(prompt: Prompt): void;
  /** The run is over (finished or failed). */
  close(): void;
}

/** Opens the prompts of a run over `requests` (ids 0..n-1 in array order, arrival order). */
export interface PromptSource {
  open(requests: readonly SimRequest[]): RunPrompts;
}

/** Prompts built on the simulator's thread when they are dispatched; answers' blocks are left to the engines. */
export function localPrompts(): RunPrompts {
  const cache = new PromptCache();
  return {
    prompt: (req) => cache.prompt(req.segments),
    answerBlocks: () => undefined,
    release: (prompt) => cache.release(prompt),
    close: () => {},
  };
}
