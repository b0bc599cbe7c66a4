/**
 * Does the prompt plus max_tokens fit the deployment's context (vLLM's --max-model-len)? Answered cheaply when
 * possible: a UTF-8 prompt of B bytes has at most B tokens (every Llama 3 token covers at least one byte), so
 *   bound = B + special tokens  and  bound + max_tokens <= maxModelLen  =>  fits, no tokenisation needed.
 * Only prompts near the limit are counted exactly (on the tokenizer thread). The errors use vLLM's own wording,
 * so clients see the same message whether the controller or the engine refused them.
 *
 * Special tokens follow the Llama 3 template vLLM applies: a completion prompt gets <|begin_of_text|>; a chat is
 *   <|begin_of_text|> + per message <|start_header_id|> role <|end_header_id|> "\n\n" content <|eot_id|>
 *   + the generation prompt <|start_header_id|> assistant <|end_header_id|> "\n\n"
 * i.e. 1 + 5 per message (role names are one token each) + 4, on top of the contents' own tokens.
 */
import { InvalidArgumentError } from '../../common/errors.ts';
import type { Deployment } from '../config/controller-config.ts';
import type { PromptInput } from './request-validation.ts';
import type { TokenCounter } from './token-counter.ts';

const BOS = 1;
const PER_MESSAGE = 5;
const GENERATION_PROMPT = 4;

export interface ContextBudget {
  /** max_tokens to send to the engine (the request's, or the deployment default clamped to what is left). */
  maxTokens: number;
  /** Exact prompt tokens when they were counted. */
  promptTokens: number | undefined;
}

function specialTokens(p: PromptInput): number {
  if (p.t === 'chat') return BOS + PER_MESSAGE * p.messages.length + GENERATION_PROMPT;
  return p.t === 'text' ? BOS : 0;
}

export async function checkContext(
  p: PromptInput,
  requested: number | undefined,
  d: Deployment,
  counter: TokenCounter,
): Promise<ContextBudget> {
  const M = d.maxModelLen;
  const wanted = requested ?? d.defaultMaxTokens;
  if (p.t !== 'ids' && p.bytes + specialTokens(p) + wanted <= M)
    return { maxTokens: wanted, promptTokens: undefined };

  let N: number;
  if (p.t === 'ids') N = p.count;
  else if (p.t === 'text') N = BOS + (await counter.count(p.text));
  else {
    const counts = await Promise.all(p.messages.map((m) => counter.count(m.content)));
    N = specialTokens(p) + counts.reduce((a, b) => a + b, 0);
  }
  if (N >= M)
    throw new InvalidArgumentError(
      `This model's maximum context length is ${M} tokens. However, your request has ${N} input tokens. Please reduce the length of the input messages.`,
      { promptTokens: N, maxModelLen: M },
    );
  if (requested === undefined) return { maxTokens: Math.min(wanted, M - N), promptTokens: N };
  if (N + requested > M)
    throw new InvalidArgumentError(
      `'max_tokens' or 'max_completion_tokens' is too large: ${requested}. This model's maximum context length is ${M} tokens and your request has ${N} input tokens (${requested} > ${M} - ${N}).`,
      { promptTokens: N, maxTokens: requested, maxModelLen: M },
    );
  return { maxTokens: requested, promptTokens: N };
}
