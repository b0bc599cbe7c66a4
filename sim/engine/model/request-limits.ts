/**
 * What one engine can never run, as vLLM refuses it: a request whose whole context (prompt + max_tokens) exceeds
 * max_model_len or the KV cache alone (vLLM checks max_model_len against the cache at start-up), an empty prompt,
 * or a prompt whose parts do not agree (block hashes, length and tail: step-plan.ts SchedulerPrompt; answer block
 * hashes: SchedulerRequest). Pure.
 */
import type { SchedulerPrompt, SchedulerRequest, StepSchedulerConfig } from './step-plan.ts';

/** Why a request of this size can never run on the engine, or null. */
export function refusal(
  cfg: StepSchedulerConfig,
  blockSize: number,
  promptTokens: number,
  maxTokens: number,
): string | null {
  if (promptTokens < 1) return 'the prompt is empty';
  const total = promptTokens + maxTokens;
  if (total > cfg.maxModelLen)
    return `${total} tokens (prompt + max_tokens) exceed max_model_len ${cfg.maxModelLen}`;
  if (Math.ceil(total / blockSize) > cfg.numBlocks)
    return `${total} tokens (prompt + max_tokens) exceed the KV cache (${cfg.numBlocks * blockSize} tokens)`;
  return null;
}

/** Tokens in the prompt, whichever form it comes in. */
export function promptLength(prompt: SchedulerPrompt): number {
  return prompt.promptIds !== undefined ? prompt.promptIds.length : (prompt.promptLength ?? 0);
}

/** What is wrong with the form of a prompt (its ids, or hashed: step-plan.ts SchedulerPrompt), or null. */
export function promptFormError(prompt: SchedulerPrompt, blockSize: number): string | null {
  const { promptIds, blockHashes, promptLength: length, promptTail } = prompt;
  if (promptIds !== undefined) {
    if (length !== undefined || promptTail !== undefined)
      return 'a prompt comes as promptIds or as promptLength with promptTail, not both';
    const full = Math.floor(promptIds.length / blockSize);
    if (blockHashes !== undefined && blockHashes.length !== full)
      return `${blockHashes.length} block hashes for a prompt of ${full} full blocks`;
    return null;
  }
  if (length === undefined || promptTail === undefined || blockHashes === undefined)
    return 'a prompt needs promptIds, or promptLength with blockHashes and promptTail';
  if (!Number.isInteger(length) || length < 0)
    return `promptLength must be a whole number of tokens, got ${length}`;
  const full = Math.floor(length / blockSize);
  if (blockHashes.length !== full)
    return `${blockHashes.length} block hashes for a prompt of ${full} full blocks`;
  const after = length - full * blockSize;
  if (promptTail.length !== after)
    return `a promptTail of ${promptTail.length} tokens for a prompt of ${length} (${after} after its last full block)`;
  return null;
}

/**
 * What is wrong with the request's answerBlockHashes (step-plan.ts SchedulerRequest), or null: they need answers
 * fixed in advance (`fixedAnswers`: the scheduler's answerToken), the prompt's blockHashes, and one hash per full
 * block of prompt + answer after the prompt's.
 */
export function answerHashesError(
  req: SchedulerRequest,
  blockSize: number,
  fixedAnswers: boolean,
): string | null {
  const { answerBlockHashes } = req;
  if (answerBlockHashes === undefined) return null;
  if (!fixedAnswers)
    return 'answerBlockHashes need answers fixed in advance (answerToken): sampled answers are hashed as sampled';
  if (req.blockHashes === undefined) return 'answerBlockHashes continue the chain of blockHashes: give both';
  const length = promptLength(req);
  const after = Math.floor((length + req.maxTokens) / blockSize) - Math.floor(length / blockSize);
  if (answerBlockHashes.length !== after)
    return `${answerBlockHashes.length} answer block hashes for ${after} full blocks after a prompt of ${length} tokens with max_tokens ${req.maxTokens}`;
  return null;
}

/** Throws a RangeError saying what is wrong with a request the engine cannot take. */
export function checkRequest(
  cfg: StepSchedulerConfig,
  blockSize: number,
  req: SchedulerRequest,
  fixedAnswers: boolean,
): void {
  const why =
    promptFormError(req, blockSize) ??
    answerHashesError(req, blockSize, fixedAnswers) ??
    refusal(cfg, blockSize, promptLength(req), req.maxTokens);
  if (why !== null) throw new RangeError(`request ${req.id}: ${why}`);
}
