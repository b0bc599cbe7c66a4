/**
 * What the chaos run measures on each request after the fact, from the client's records only: whether its
 * tokens are the undisturbed run's, and how long a fault stalled the streams it hit.
 */
import { mismatchedTokens, referenceTokens } from './reference-tokens.ts';
import type { StreamAudit } from './stream-audit.ts';

export interface ChaosRequest {
  id: string;
  prompt: string;
  maxTokens: number;
  seed: number;
}

export interface Tracked {
  request: ChaosRequest;
  audit: StreamAudit;
  promptIds: number[] | undefined;
  /** Received token ids by index. */
  tokens: (number | undefined)[];
  /** Arrival time (ms since the run's start) of each delta. */
  deltaTimes: number[];
  startedAt: number;
  endedAt: number | undefined;
  /** Fresh Generate calls on another replica (nothing had arrived when the stream broke). */
  retries: number;
}

/**
 * Tokens that differ from the undisturbed run of the request's (seed, prompt): 0 when the client got exactly
 * that (all of it when the request completed; a prefix of it when it failed).
 */
export function textMismatches(t: Tracked): number {
  const completed = t.audit.result().outcome === 'completed';
  const count = completed ? t.request.maxTokens : t.tokens.length;
  if (count === 0) return 0;
  if (!t.promptIds) return count;
  return mismatchedTokens(t.tokens, referenceTokens(t.request.seed, t.promptIds, count));
}

/**
 * The streams a fault hit (a token before it, not ended before it) and the longest any of them then waited
 * for its next token or its end: the fault's cost as clients saw it.
 */
export function streamStall(tracked: readonly Tracked[], at: number): { hit: number; longestMs: number } {
  let hit = 0;
  let longestMs = 0;
  for (const t of tracked) {
    const before = t.deltaTimes.findLast((x) => x <= at);
    if (before === undefined || (t.endedAt !== undefined && t.endedAt <= at)) continue;
    hit += 1;
    const next = t.deltaTimes.find((x) => x > at) ?? t.endedAt;
    if (next !== undefined) longestMs = Math.max(longestMs, next - at);
  }
  return { hit, longestMs };
}
