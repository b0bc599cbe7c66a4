/**
 * Translates a corral GenerateRequest into the engine's OpenAI-compatible HTTP request (VLLM.md):
 * `prompt` -> POST /v1/completions, `chat` -> POST /v1/chat/completions, `prompt_token_ids` -> /v1/completions
 * with `prompt` as the id list (exact continuation on another replica, no re-tokenisation drift).
 * Always streamed, with `stream_options.include_usage` (a last chunk carries exact usage) and `return_token_ids`
 * (every chunk carries its token ids, so the worker counts tokens exactly and failover can resume from ids).
 */
import { err, type FieldError, ok, type Result } from '../../common/errors.ts';
import type { GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';

export type EnginePath = '/v1/completions' | '/v1/chat/completions';

export interface EngineHttpRequest {
  path: EnginePath;
  body: Record<string, unknown>;
}

/**
 * @param servedModel the name the engine serves (its --served-model-name, else the model it loaded): the
 *   controller chose this engine for the request, so the engine's own name is the one it will accept.
 */
export function toEngineRequest(req: GenerateRequest, servedModel: string): Result<EngineHttpRequest> {
  const errors: FieldError[] = [];
  const body: Record<string, unknown> = { model: servedModel };
  let path: EnginePath = '/v1/completions';
  const input = req.input;
  switch (input?.$case) {
    case 'prompt':
      if (input.value === '') errors.push({ path: 'request.prompt', message: 'must not be empty' });
      body.prompt = input.value;
      break;
    case 'promptTokenIds':
      if (input.value.ids.length === 0)
        errors.push({ path: 'request.prompt_token_ids', message: 'must not be empty' });
      body.prompt = input.value.ids;
      break;
    case 'chat':
      path = '/v1/chat/completions';
      if (input.value.messages.length === 0) {
        errors.push({ path: 'request.chat.messages', message: 'must hold at least one message' });
      }
      body.messages = input.value.messages.map((m) => ({ role: m.role, content: m.content }));
      break;
    case undefined:
      errors.push({ path: 'request.input', message: 'one of prompt, chat or prompt_token_ids is required' });
      break;
  }
  if (req.maxTokens !== undefined) {
    if (req.maxTokens <= 0)
      errors.push({ path: 'request.max_tokens', message: `must be > 0, got ${req.maxTokens}` });
    body.max_tokens = req.maxTokens;
  }
  const s = req.sampling;
  if (s) {
    if (s.temperature !== undefined) body.temperature = s.temperature;
    if (s.topP !== undefined) body.top_p = s.topP;
    if (s.topK !== undefined) body.top_k = s.topK;
    if (s.seed !== undefined) body.seed = s.seed;
    if (s.stop.length > 0) body.stop = s.stop;
    if (s.ignoreEos) body.ignore_eos = true;
    if (s.minTokens > 0) body.min_tokens = s.minTokens;
  }
  // vLLM rejects a non-zero priority unless started with --scheduling-policy priority; sending 0 is the same
  // as not sending it, and omitting it keeps engines without that flag working.
  if (req.priority !== 0) body.priority = req.priority;
  body.stream = true;
  body.stream_options = { include_usage: true };
  body.return_token_ids = true;
  return errors.length > 0 ? err(errors) : ok({ path, body });
}
