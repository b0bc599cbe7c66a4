/**
 * The tokens an undisturbed run of a request produces, computed instead of measured: the engine simulator draws
 * each token from a hash of (seed, the whole context so far) (sim/engine/model/token-source.ts), so a request
 * continued elsewhere from prompt ids + generated ids must produce exactly these. Comparing every token a client
 * received with them is the failover tests' "same text as an undisturbed run", for all of a chaos run's
 * requests at no cost. Valid for the simulator's default random output with ignore_eos (no EOS draws).
 */
import { contextHash, mixHash, nextToken } from '../../sim/engine/model/token-source.ts';

export function referenceTokens(seed: number, promptIds: readonly number[], count: number): number[] {
  let hash = contextHash(seed, promptIds);
  const out: number[] = [];
  for (let generated = 0; generated < count; generated++) {
    const id = nextToken({ mode: 'random', hash, promptIds, generated, eosAllowed: false, eosProb: 0 });
    out.push(id);
    hash = mixHash(hash, id);
  }
  return out;
}

/** Indices where the received tokens differ from the reference (a missing token counts too). */
export function mismatchedTokens(
  received: readonly (number | undefined)[],
  reference: readonly number[],
): number {
  let wrong = 0;
  const n = Math.max(received.length, reference.length);
  for (let i = 0; i < n; i++) if (received[i] !== reference[i]) wrong += 1;
  return wrong;
}
