/**
 * Checks of a GenerateRequest that need no tokens, before anything is routed: the model is served, there is an
 * input and it is well formed (chat roles, contents, who speaks last), max_tokens and sampling are sane, and the
 * prompt is within the deployment's documented size limit. Pure; the context-length check (which needs token
 * counts) is in context-check.ts.
 */
import {
  type FieldError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  ValidationError,
} from '../../common/errors.ts';
import type { GenerateRequest } from '../../proto/gen/corral/v1/inference.ts';
import type { Deployment } from '../config/controller-config.ts';

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;

/** The request's input, reduced to what the context check counts. */
export type PromptInput =
  | { t: 'text'; text: string; bytes: number }
  | { t: 'chat'; messages: readonly { role: string; content: string }[]; bytes: number }
  | { t: 'ids'; count: number };

export function resolveDeployment(model: string, deployments: readonly Deployment[]): Deployment {
  const d = model === '' ? undefined : deployments.find((x) => x.name === model);
  if (d) return d;
  const served = deployments.map((x) => x.name).join(', ');
  if (model === '') throw new InvalidArgumentError(`model is required; served models: ${served}`);
  throw new NotFoundError(`model \`${model}\` is not served here; served models: ${served}`, { model });
}

/** Validates everything but the context length; returns the input for the context check. */
export function validateRequest(req: GenerateRequest, d: Deployment): PromptInput {
  const input = req.input;
  let prompt: PromptInput;
  switch (input?.$case) {
    case undefined:
      throw new InvalidArgumentError('no input: set one of prompt, chat or prompt_token_ids');
    case 'prompt':
      if (input.value.trim() === '') throw new InvalidArgumentError('prompt must not be empty');
      prompt = { t: 'text', text: input.value, bytes: Buffer.byteLength(input.value, 'utf8') };
      break;
    case 'chat': {
      const errors = chatErrors(input.value.messages);
      if (errors.length > 0) throw new ValidationError('chat messages', errors);
      const bytes = input.value.messages.reduce((n, m) => n + Buffer.byteLength(m.content, 'utf8'), 0);
      prompt = { t: 'chat', messages: input.value.messages, bytes };
      break;
    }
    case 'promptTokenIds':
      if (input.value.ids.length === 0) throw new InvalidArgumentError('prompt_token_ids must not be empty');
      prompt = { t: 'ids', count: input.value.ids.length };
      break;
  }
  if (req.maxTokens !== undefined && req.maxTokens <= 0)
    throw new InvalidArgumentError(`max_tokens must be greater than 0, got ${req.maxTokens}`);
  const s = req.sampling;
  if (s?.temperature !== undefined && !(s.temperature >= 0))
    throw new InvalidArgumentError(`sampling.temperature must be >= 0, got ${s.temperature}`);
  if (s?.topP !== undefined && !(s.topP > 0 && s.topP <= 1))
    throw new InvalidArgumentError(`sampling.top_p must be in (0, 1], got ${s.topP}`);
  if (prompt.t !== 'ids' && prompt.bytes > d.maxPromptBytes)
    throw new ResourceExhaustedError(
      `prompt is ${prompt.bytes} bytes; model ${d.name} accepts at most ${d.maxPromptBytes} bytes (maxPromptBytes)`,
      { bytes: prompt.bytes, limit: d.maxPromptBytes },
    );
  return prompt;
}

/** Every problem of a chat, each naming its message index. */
export function chatErrors(messages: readonly { role: string; content: string }[]): FieldError[] {
  if (messages.length === 0) return [{ path: 'chat.messages', message: 'must contain at least one message' }];
  const errors: FieldError[] = [];
  messages.forEach((m, i) => {
    if (!(CHAT_ROLES as readonly string[]).includes(m.role))
      errors.push({
        path: `chat.messages[${i}].role`,
        message: `must be one of ${CHAT_ROLES.join(', ')}, got ${JSON.stringify(m.role)}`,
      });
    if (m.content.trim() === '')
      errors.push({ path: `chat.messages[${i}].content`, message: 'must not be empty' });
  });
  const last = messages[messages.length - 1];
  if (last && last.role !== 'user' && (CHAT_ROLES as readonly string[]).includes(last.role))
    errors.push({
      path: `chat.messages[${messages.length - 1}]`,
      message: `the last message must be from the user, got ${last.role}`,
    });
  return errors;
}
