/**
 * How long one request holds an engine sequence, as shedding assumes it until the queue has measured how fast
 * it drains (shed-policy.ts: drain = ready sequences / serviceMs). Pure.
 *
 *   serviceMs = TTFT bound + defaultMaxTokens x time-per-output-token bound
 *
 * The bounds are MLPerf Inference v5.0's for llama3_1-405b, server scenario (../shared/VLLM.md): p99 TTFT <= 6 s
 * and p99 TPOT <= 175 ms, under load. A deployment sized to serve within them holds a sequence at most this long
 * for a request of its default length (what a request without max_tokens gets): 6 s + 256 x 175 ms = 50.8 s at
 * the defaults. It is meant to err long: an estimate shorter than the real service admits a cold-start burst
 * that then waits past queue.maxWaitMs, a longer one only sheds more of that burst, and only until the measured
 * drain takes over (drainOf: once it covers a few of its rounds). Smaller models decode faster than 405B, so for
 * them it errs further on that side. The planner's decode estimate (planner/cost-model.ts) is not used: it ranks
 * shapes from datasheet bandwidths and runs well ahead of what vLLM delivers, so it would err short.
 *
 * `queue.serviceMs` in the config replaces it for every deployment (an operator who knows the service time).
 */
import type { Deployment } from '../config/controller-config.ts';

/** MLPerf Inference v5.0 llama3_1-405b server scenario: p99 time to first token. */
export const TTFT_BOUND_MS = 6000;
/** The same scenario's p99 time per output token. */
export const TPOT_BOUND_MS = 175;

export function serviceTimeMs(
  d: Pick<Deployment, 'defaultMaxTokens'>,
  configured: number | undefined,
): number {
  return configured ?? TTFT_BOUND_MS + d.defaultMaxTokens * TPOT_BOUND_MS;
}
