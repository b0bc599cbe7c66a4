/**
 * Block hashes of token ids: the one definition of "a block" that the engine's prefix cache (the simulator's
 * KV block pool) and the controller's prefix-aware router share, so the router's idea of a cached block is
 * exactly the engine's. vLLM caches KV in blocks of 16 tokens and finds a cached block by a hash chained over
 * every block before it, so a block hash names the whole prefix up to its end:
 *
 *   h_0 = chain(ROOT, tokens[0..16)),   h_i = chain(h_{i-1}, tokens[16i..16i+16))
 *
 * Only full blocks are hashed (vLLM never shares a partial block). Two prompts share their first k hashes exactly
 * when they share their first 16k tokens, so "longest cached prefix" is "how many leading hashes a group holds".
 * Hashes are 53-bit integers (two 32-bit lanes), exact as JS numbers and usable as Map keys: at 2^53 a false
 * match between different prefixes is negligible; at 2^32 a busy cluster would see some. Each lane takes a token
 * in one multiply and one xor-shift, a bijection of the lane for a given token and injective in the token, so
 * blocks that differ in one token never collide; each lane is mixed in full once per block. (A full mix per
 * token, as before, made hashing a prompt a third slower, and the router hashes every prompt it dispatches.)
 */

/** The parent of a prompt's first block. */
export const ROOT_BLOCK_HASH = 0;

const TWO_POW_21 = 2 ** 21;
const LANE_B_SALT = 0x27d4eb2f;

function mix32(h: number, v: number): number {
  let x = (h ^ v) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function laneA(parent: number): number {
  return mix32(0x9e3779b9, (Math.floor(parent / TWO_POW_21) >>> 0) ^ (parent % TWO_POW_21));
}

function laneB(parent: number): number {
  return mix32(0x7f4a7c15, (parent % TWO_POW_21) + 0x165667b1);
}

/** A token into lane a, and into lane b (other constants): see the file comment. */
function takeA(a: number, token: number): number {
  const x = Math.imul(a ^ token, 0x9e3779b1);
  return x ^ (x >>> 15);
}

function takeB(b: number, token: number): number {
  const x = Math.imul(b ^ token, 0x85ebca77);
  return x ^ (x >>> 13);
}

/** Both lanes mixed in full: 32 bits of lane a and the top 21 of lane b, an integer below 2^53. */
function join(a: number, b: number): number {
  return mix32(a, 0) * TWO_POW_21 + (mix32(b, LANE_B_SALT) >>> 11);
}

/** The hash of the block tokens[start..end) chained on its parent's hash (or on ROOT_BLOCK_HASH). */
export function chainBlockHash(
  parent: number,
  tokens: ArrayLike<number>,
  start = 0,
  end = tokens.length,
): number {
  let a = laneA(parent);
  let b = laneB(parent);
  for (let i = start; i < end; i++) {
    const t = tokens[i] as number;
    a = takeA(a, t);
    b = takeB(b, t);
  }
  return join(a, b);
}

/**
 * The same hash with tokens read through `tokenAt` (the engine's sequences keep prompt and output apart, and a
 * block may straddle them): chainBlockHashAt(p, (i) => t[i], s, e) === chainBlockHash(p, t, s, e).
 */
export function chainBlockHashAt(
  parent: number,
  tokenAt: (i: number) => number,
  start: number,
  end: number,
): number {
  let a = laneA(parent);
  let b = laneB(parent);
  for (let i = start; i < end; i++) {
    const t = tokenAt(i);
    a = takeA(a, t);
    b = takeB(b, t);
  }
  return join(a, b);
}

/** Chained hashes of the full blocks of a prompt's token ids. */
export function promptBlockHashes(tokenIds: readonly number[], blockSize = 16): number[] {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  const out: number[] = [];
  let parent = ROOT_BLOCK_HASH;
  for (let start = 0; start + blockSize <= tokenIds.length; start += blockSize) {
    parent = chainBlockHash(parent, tokenIds, start, start + blockSize);
    out.push(parent);
  }
  return out;
}
