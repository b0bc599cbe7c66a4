/**
 * Prompt block hashes: the key prefix-aware routing and the prefix cache share. vLLM caches KV in blocks of 16
 * tokens and finds a cached block by a hash chained over every block before it, so a block hash names the whole
 * prefix up to its end:
 *
 *   h_0 = chain(ROOT, tokens[0..16)),   h_i = chain(h_{i-1}, tokens[16i..16i+16))
 *
 * Only full blocks are hashed (vLLM never shares a partial block). Two prompts share their first k hashes exactly
 * when they share their first 16k tokens, so "longest cached prefix" is "how many leading hashes a group holds".
 *
 * The dispatcher computes these once per request from the prompt's token ids (the gateway tokenises already) and
 * passes them to pick() as `RouteRequest.promptBlocks`. Hashes are 53-bit integers (two 32-bit mixes), exact as JS
 * numbers: at 2^53 a false match between different prefixes is negligible; at 2^32 a busy cluster would see some.
 */

/** The parent of a prompt's first block. */
export const ROOT_BLOCK_HASH = 0x2545f491;

const TWO_POW_21 = 2 ** 21;

function mix32(h: number, v: number): number {
  let x = (h ^ v) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The hash of one block given its parent's hash and the block's content (token ids, or synthetic content ids). */
export function chainBlockHash(
  parent: number,
  content: readonly number[] | number,
  start = 0,
  end = typeof content === 'number' ? 1 : content.length,
): number {
  const parentHi = Math.floor(parent / TWO_POW_21) >>> 0;
  const parentLo = parent % TWO_POW_21;
  let a = mix32(0x9e3779b9, parentHi ^ parentLo);
  let b = mix32(0x7f4a7c15, parentLo + 0x165667b1);
  if (typeof content === 'number') {
    a = mix32(a, content);
    b = mix32(b, content ^ 0x27d4eb2f);
  } else {
    for (let i = start; i < end; i++) {
      const id = content[i] as number;
      a = mix32(a, id);
      b = mix32(b, id ^ 0x27d4eb2f);
    }
  }
  // 32 bits of a and the top 21 bits of b: an integer below 2^53.
  return a * TWO_POW_21 + (b >>> 11);
}

/** Chained hashes of the full blocks of a prompt's token ids. */
export function promptBlockHashes(tokenIds: readonly number[], blockSize = 16): number[] {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`blockSize must be a positive integer`);
  const out: number[] = [];
  let parent = ROOT_BLOCK_HASH;
  for (let start = 0; start + blockSize <= tokenIds.length; start += blockSize) {
    parent = chainBlockHash(parent, tokenIds, start, start + blockSize);
    out.push(parent);
  }
  return out;
}
