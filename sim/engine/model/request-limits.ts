/**
 * What one engine can never run, as vLLM refuses it: a request whose whole context (prompt + max_tokens) exceeds
 * max_model_len or the KV cache alone (vLLM checks max_model_len against the cache at start-up), an empty prompt,
 * or prompt block hashes that do not match the prompt. Pure.
 */
import type { SchedulerRequest, StepSchedulerConfig } from './step-plan.ts';

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

/** Throws a RangeError saying what is wrong with a request the engine cannot take. */
export function checkRequest(cfg: StepSchedulerConfig, blockSize: number, req: SchedulerRequest): void {
  const why = refusal(cfg, blockSize, req.promptIds.length, req.maxTokens);
  if (why !== null) throw new RangeError(`request ${req.id}: ${why}`);
  const full = Math.floor(req.promptIds.length / blockSize);
  if (req.blockHashes !== undefined && req.blockHashes.length !== full)
    throw new RangeError(
      `request ${req.id}: ${req.blockHashes.length} block hashes for a prompt of ${full} full blocks`,
    );
}
