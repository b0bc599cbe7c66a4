/**
 * A queued request's prompt as the engine will see it, for prefix-aware routing: its token ids (the prompt's
 * own ids; a text prompt as <|begin_of_text|> + its tokens; a chat through Llama 3.1's template, as vLLM and
 * the simulator tokenise them, common/tokenizer.ts) and their 16-token block hashes (common/block-hash.ts, the
 * engine's own prefix-cache blocks).
 *
 * Computed by the dispatcher from the queued body, not at the gateway and carried in the queue: the queue entry
 * stays the request as accepted (no hash lists in Redis: a 100k-token prompt has 6,250 blocks), any replica that
 * takes a request derives the same blocks from the same durable body, and a continuation's prompt is ids anyway.
 * The cost is one tokenisation of a text prompt before its dispatch call, on the controller's tokenizer thread
 * (off the event loop); prompts given as token ids only hash (microseconds per thousand tokens).
 */
import { promptBlockHashes } from '../../common/block-hash.ts';
import { BEGIN_OF_TEXT, chatTexts, encodeChat } from '../../common/tokenizer.ts';
import type { GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';

/** Text to token ids without special tokens (the controller's tokenizer thread). */
export type Encode = (text: string) => Promise<number[]>;

export interface PromptBlocks {
  /** Chained hashes of the prompt's full blocks. */
  blocks: number[];
  promptTokens: number;
}

/** The prompt's token ids, or undefined when they cannot be known here (text, and no encoder). */
export async function promptTokenIds(
  req: GenerateRequest,
  encode: Encode | undefined,
): Promise<readonly number[] | undefined> {
  const input = req.input;
  if (input?.$case === 'promptTokenIds') return input.value.ids;
  if (!encode) return undefined;
  if (input?.$case === 'prompt') return [BEGIN_OF_TEXT, ...(await encode(input.value))];
  if (input?.$case === 'chat') {
    const messages = input.value.messages;
    return encodeChat(messages, true, await Promise.all(chatTexts(messages).map(encode)));
  }
  return undefined;
}

export async function promptBlocks(
  req: GenerateRequest,
  encode: Encode | undefined,
): Promise<PromptBlocks | undefined> {
  const ids = await promptTokenIds(req, encode);
  return ids ? { blocks: promptBlockHashes(ids), promptTokens: ids.length } : undefined;
}
