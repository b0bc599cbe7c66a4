/**
 * Which token comes next. Random mode draws from real English tokens with a hash of (seed, the whole context so
 * far), so the output is deterministic for a (seed, prompt) pair AND a request continued elsewhere from prompt ids
 * + generated ids (corral's failover) produces exactly the tokens the uninterrupted request would have. Echo mode
 * repeats the prompt's text tokens.
 */
import { EOT, encodeText, FIRST_SPECIAL_ID } from '../../../common/tokenizer.ts';

const CORPUS =
  'The quick brown fox jumps over the lazy dog while a cluster of machines serves language models to many ' +
  'people at once. Each request is split into tokens, scheduled in batches, and answered one word after ' +
  'another. Engineers measure latency, throughput and memory, then tune the system so that it stays fast, ' +
  'fair and reliable under heavy load, even when a node fails in the middle of the night.';

let pool: number[] | undefined;
function wordPool(): number[] {
  pool ??= [...new Set(encodeText(CORPUS))];
  return pool;
}

/** FNV-1a style 32-bit mixing of one more id into a running context hash. */
export function mixHash(h: number, id: number): number {
  let x = (h ^ id) >>> 0;
  x = Math.imul(x, 16777619) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0x5bd1e995) >>> 0;
  return (x ^ (x >>> 15)) >>> 0;
}

export function contextHash(seed: number, ids: readonly number[]): number {
  let h = mixHash(2166136261, seed >>> 0);
  for (const id of ids) h = mixHash(h, id);
  return h;
}

export interface NextTokenInput {
  mode: 'random' | 'echo';
  /** contextHash(seed, prompt + generated so far). */
  hash: number;
  promptIds: readonly number[];
  generated: number;
  /** True when an end-of-sequence token may be sampled now (not ignore_eos, min_tokens reached). */
  eosAllowed: boolean;
  eosProb: number;
}

/** The next token id; EOT (<|eot_id|>) when the sequence ends. */
export function nextToken(i: NextTokenInput): number {
  // Two independent uniform draws from the one hash: one for EOS, one for the token.
  const u = mixHash(i.hash, 0x9e3779b9) / 2 ** 32;
  if (i.eosAllowed && u < i.eosProb) return EOT;
  if (i.mode === 'echo') {
    const text = i.promptIds.filter((id) => id < FIRST_SPECIAL_ID);
    if (text.length > 0) return text[i.generated % text.length] ?? EOT;
  }
  const words = wordPool();
  return words[mixHash(i.hash, 0x85ebca6b) % words.length] ?? EOT;
}
