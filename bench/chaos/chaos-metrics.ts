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
 * The streams a fault hit (a token before it, not ended before it) and the longest pause any of them then saw
 * between two events (tokens, or the last token and the end) in the `windowMs` after it: the fault's cost as
 * clients saw it. Not just the wait for the first token after the fault: a client resumed elsewhere first
 * gets the tokens that were logged but never reached it, and pauses only when those run out.
 */
export function streamStall(
  tracked: readonly Tracked[],
  at: number,
  windowMs = 30_000,
): { hit: number; longestMs: number } {
  let hit = 0;
  let longestMs = 0;
  for (const t of tracked) {
    const from = t.deltaTimes.findLastIndex((x) => x <= at);
    if (from < 0 || (t.endedAt !== undefined && t.endedAt <= at)) continue;
    hit += 1;
    const times = t.endedAt === undefined ? t.deltaTimes : [...t.deltaTimes, t.endedAt];
    for (let i = from; i + 1 < times.length && (times[i] as number) < at + windowMs; i++) {
      // A pause that began before the fault counts from the fault: what came before was not its doing.
      const pause = (times[i + 1] as number) - Math.max(times[i] as number, at);
      longestMs = Math.max(longestMs, pause);
    }
  }
  return { hit, longestMs };
}
