/**
 * Synthetic prompts as segments of distinct content (a tenant's system prompt, a document, a user's question, a
 * model's earlier answer). Token i of a segment is a fixed function of (segment key, i), so two prompts share
 * their first n tokens exactly when their segments agree that far: the engine's prefix cache and the router's
 * block hashes then see the reuse that real text would give. The cluster simulator materialises only the tokens
 * it hashes (prompt-cache.ts).
 */
import { chainBlockHash, ROOT_BLOCK_HASH } from '../../../common/block-hash.ts';

export interface Segment {
  /** Identifies the content; equal keys mean equal text. */
  readonly key: number;
  readonly tokens: number;
}

/** A content key from numbers (kind, tenant, index...). */
export function contentKey(...parts: number[]): number {
  return chainBlockHash(ROOT_BLOCK_HASH, parts);
}

/** Llama 3's ordinary vocabulary is ids 0..127999; stay clear of the special tokens above it. */
const VOCAB = 128_000;

/** The token at position `index` of the content `key`. */
export function tokenOf(key: number, index: number): number {
  return mixToken(keyHigh(key), keySalt(key), index);
}

/** tokenOf(key, i) for i in [0, count), the key split into its two 32-bit parts once rather than per token. */
export function segmentIds(key: number, count: number): Int32Array {
  return writeSegmentIds(key, 0, count, new Int32Array(count), 0);
}

/** tokenOf(key, i) for i in [first, end) written into `out` from index `at`; returns `out`. */
export function writeSegmentIds(
  key: number,
  first: number,
  end: number,
  out: Int32Array,
  at: number,
): Int32Array {
  const high = keyHigh(key);
  const salt = keySalt(key);
  const shift = at - first;
  for (let i = first; i < end; i++) out[shift + i] = mixToken(high, salt, i);
  return out;
}

/**
 * Tokens [from, to) of the prompt made of `segments` (their tokens one after another) written into `out` from
 * index 0; returns `out`. Equal to promptTokenIds(segments).slice(from, to).
 */
export function writePromptIds(
  segments: readonly Segment[],
  from: number,
  to: number,
  out: Int32Array,
): Int32Array {
  let start = 0;
  for (let j = 0; j < segments.length && start < to; j++) {
    const seg = segments[j] as Segment;
    const end = start + seg.tokens;
    if (end > from)
      writeSegmentIds(
        seg.key,
        Math.max(from, start) - start,
        Math.min(to, end) - start,
        out,
        Math.max(0, start - from),
      );
    start = end;
  }
  return out;
}

/**
 * A key split into the two 32-bit parts tokenOf mixes, once: tokenOfSplit(high, salt, i) === tokenOf(key, i).
 * A sampler asks for one token of a request per step, and keys are 53-bit: truncating one to 32 bits is a slow
 * path, paid once per key here and by segmentIds.
 */
export function splitKey(key: number): { high: number; salt: number } {
  return { high: keyHigh(key), salt: keySalt(key) };
}

export function tokenOfSplit(high: number, salt: number, index: number): number {
  return mixToken(high, salt, index);
}

const keyHigh = (key: number) => Math.floor(key / 4096) | 0;
const keySalt = (key: number) => 0xc2b2ae35 ^ (key & 4095);

/** VOCAB = 125 x 2^10: a 32-bit value modulo VOCAB is (its top 22 bits modulo 125) x 2^10 + its low 10 bits. */
const VOCAB_ODD = VOCAB / 1024;

/**
 * The mix in 32-bit integers, the value unsigned only at the end. Its `% VOCAB` is taken in small integers:
 * V8 computes % of a 32-bit unsigned value above 2^31 in floating point, by a call to fmod, which was a third of
 * what the simulator spent making prompts (and answers).
 */
function mixToken(high: number, salt: number, index: number): number {
  let x = high ^ Math.imul(index + 1, 0x9e3779b1);
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), salt);
  const u = (x ^ (x >>> 16)) >>> 0;
  return ((u >>> 10) % VOCAB_ODD) * 1024 + (u & 1023);
}

export function segmentTokens(segments: readonly Segment[]): number {
  let n = 0;
  for (const s of segments) n += s.tokens;
  return n;
}

export function promptTokenIds(segments: readonly Segment[]): number[] {
  const out = new Array<number>(segmentTokens(segments));
  let at = 0;
  for (const s of segments) for (let i = 0; i < s.tokens; i++) out[at++] = tokenOf(s.key, i);
  return out;
}
