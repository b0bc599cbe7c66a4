/**
 * The router's block hashes are the engine's: one definition in common/block-hash.ts (see there). Kept under
 * this name for the scheduler's callers.
 */
export { chainBlockHash, promptBlockHashes, ROOT_BLOCK_HASH } from '../../common/block-hash.ts';
