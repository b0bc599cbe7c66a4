/**
 * Llama 3 tokenisation, shared by the engine simulator (/tokenize, usage, the context check) and the controller
 * (its own context check), so every count in corral agrees with the others and with vLLM's for Llama 3 models.
 * Wraps `llama3-tokenizer-js` (Llama 3's 128k BPE vocabulary, offline).
 */
import llama3 from 'llama3-tokenizer-js';

export const BEGIN_OF_TEXT = 128000;
export const END_OF_TEXT = 128001;
const START_HEADER = 128006;
const END_HEADER = 128007;
export const EOT = 128009;
/** Ids at or above this are special tokens (<|begin_of_text|>, <|eot_id|>, reserved ones). */
export const FIRST_SPECIAL_ID = 128000;
export const VOCAB_SIZE = 128256;

export interface ChatMessage {
  role: string;
  content: string;
}

/** Text to ids without special tokens. */
export function encodeText(text: string): number[] {
  return llama3.encode(text, { bos: false, eos: false });
}

/**
 * A completion prompt as vLLM tokenises it: the tokenizer adds <|begin_of_text|> (add_special_tokens defaults to
 * true in vLLM's completions and /tokenize), no end-of-text.
 */
export function encodePrompt(text: string): number[] {
  return [BEGIN_OF_TEXT, ...encodeText(text)];
}

/** Ids to text, skipping special tokens as vLLM does by default (skip_special_tokens=true). */
export function decode(ids: readonly number[]): string {
  return llama3.decode(ids.filter((id) => id < FIRST_SPECIAL_ID));
}

function header(role: string): number[] {
  return [START_HEADER, ...encodeText(role), END_HEADER, ...encodeText('\n\n')];
}

/** The system turn's text: the template's knowledge-cutoff lines, then the system message's content if any. */
function systemText(messages: readonly ChatMessage[]): string {
  const system = messages[0]?.role === 'system' ? messages[0].content.trim() : '';
  return `Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n${system}`;
}

/**
 * The texts of a chat that encodeChat tokenises (the system turn's text, then every other message's stripped
 * content, in order): all the BPE work of a chat, so a caller may encode them elsewhere (a tokenizer thread)
 * and hand the ids to encodeChat.
 */
export function chatTexts(messages: readonly ChatMessage[]): string[] {
  const rest = messages[0]?.role === 'system' ? messages.slice(1) : messages;
  return [systemText(messages), ...rest.map((m) => m.content.trim())];
}

/**
 * Llama 3.1's chat template (tokenizer_config.json of meta-llama/Llama-3.1-*-Instruct) as token ids: it always
 * emits a system turn that starts with the knowledge-cutoff lines (with the template's default date), then each
 * message with its content stripped, then the assistant header when add_generation_prompt is set. Special tokens
 * are appended as ids, never parsed out of user text. `encoded`: chatTexts(messages) already encoded.
 */
export function encodeChat(
  messages: readonly ChatMessage[],
  addGenerationPrompt = true,
  encoded: readonly (readonly number[])[] = chatTexts(messages).map(encodeText),
): number[] {
  const rest = messages[0]?.role === 'system' ? messages.slice(1) : messages;
  if (encoded.length !== rest.length + 1)
    throw new RangeError(`encodeChat: ${encoded.length} encoded texts for ${rest.length + 1} (chatTexts)`);
  const ids = [BEGIN_OF_TEXT, ...header('system'), ...(encoded[0] as readonly number[]), EOT];
  rest.forEach((m, i) => {
    ids.push(...header(m.role), ...(encoded[i + 1] as readonly number[]), EOT);
  });
  if (addGenerationPrompt) ids.push(...header('assistant'));
  return ids;
}
