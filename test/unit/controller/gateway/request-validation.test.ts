import { describe, expect, it } from 'vitest';
import { CorralError } from '../../../../common/errors.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { resolveDeployment, validateRequest } from '../../../../controller/gateway/request-validation.ts';
import type { ChatMessage, GenerateRequest } from '../../../../proto/gen/corral/v1/inference.ts';
import { PriorityClass } from '../../../../proto/gen/corral/v1/inference.ts';

const config = compileControllerConfig({
  deployments: [
    { name: 'llama-8b', model: 'm', maxPromptBytes: 100 },
    { name: 'llama-70b', model: 'm2' },
  ],
});
const d = config.deployments[0]!;

const req = (over: Partial<GenerateRequest>): GenerateRequest => ({
  model: 'llama-8b',
  requestId: '',
  input: { $case: 'prompt', value: 'hi' },
  maxTokens: undefined,
  sampling: undefined,
  priority: 0,
  returnTokenIds: false,
  priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
  ...over,
});
const chat = (...messages: [string, string][]): GenerateRequest['input'] => ({
  $case: 'chat',
  value: { messages: messages.map(([role, content]): ChatMessage => ({ role, content })) },
});

function failure(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof CorralError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected an error');
}

describe('resolveDeployment', () => {
  it('finds a served model', () => {
    expect(resolveDeployment('llama-70b', config.deployments).model).toBe('m2');
  });
  it('unknown model: NOT_FOUND listing the served models', () => {
    expect(failure(() => resolveDeployment('gpt-4', config.deployments))).toEqual({
      code: 'not_found',
      message: 'model `gpt-4` is not served here; served models: llama-8b, llama-70b',
    });
  });
  it('empty model: INVALID_ARGUMENT', () => {
    expect(failure(() => resolveDeployment('', config.deployments))).toEqual({
      code: 'invalid_argument',
      message: 'model is required; served models: llama-8b, llama-70b',
    });
  });
});

describe('validateRequest', () => {
  it.each([
    [
      'no input',
      req({ input: undefined }),
      'invalid_argument',
      'no input: set one of prompt, chat or prompt_token_ids',
    ],
    [
      'empty prompt',
      req({ input: { $case: 'prompt', value: '' } }),
      'invalid_argument',
      'prompt must not be empty',
    ],
    [
      'blank prompt',
      req({ input: { $case: 'prompt', value: ' \n' } }),
      'invalid_argument',
      'prompt must not be empty',
    ],
    [
      'empty chat',
      req({ input: chat() }),
      'invalid_argument',
      'chat.messages: must contain at least one message',
    ],
    [
      'bad role',
      req({ input: chat(['bot', 'x'], ['user', 'y']) }),
      'invalid_argument',
      'chat.messages[0].role: must be one of system, user, assistant, got "bot"',
    ],
    [
      'empty content',
      req({ input: chat(['system', 'x'], ['user', '  ']) }),
      'invalid_argument',
      'chat.messages[1].content: must not be empty',
    ],
    [
      'last not from user',
      req({ input: chat(['user', 'x'], ['assistant', 'y']) }),
      'invalid_argument',
      'chat.messages[1]: the last message must be from the user, got assistant',
    ],
    [
      'empty token ids',
      req({ input: { $case: 'promptTokenIds', value: { ids: [] } } }),
      'invalid_argument',
      'prompt_token_ids must not be empty',
    ],
    [
      'max_tokens zero',
      req({ maxTokens: 0 }),
      'invalid_argument',
      'max_tokens must be greater than 0, got 0',
    ],
    [
      'max_tokens negative',
      req({ maxTokens: -5 }),
      'invalid_argument',
      'max_tokens must be greater than 0, got -5',
    ],
    [
      'negative temperature',
      req({ sampling: { temperature: -1, stop: [], ignoreEos: false, minTokens: 0 } }),
      'invalid_argument',
      'sampling.temperature must be >= 0, got -1',
    ],
    [
      'top_p zero',
      req({ sampling: { topP: 0, stop: [], ignoreEos: false, minTokens: 0 } }),
      'invalid_argument',
      'sampling.top_p must be in (0, 1], got 0',
    ],
    [
      'prompt over the size limit',
      req({ input: { $case: 'prompt', value: 'x'.repeat(101) } }),
      'resource_exhausted',
      'prompt is 101 bytes; model llama-8b accepts at most 100 bytes (maxPromptBytes)',
    ],
    [
      'multi-byte characters count as bytes',
      req({ input: { $case: 'prompt', value: 'é'.repeat(51) } }),
      'resource_exhausted',
      'prompt is 102 bytes',
    ],
    [
      'chat contents together over the limit',
      req({ input: chat(['system', 'x'.repeat(60)], ['user', 'y'.repeat(41)]) }),
      'resource_exhausted',
      'prompt is 101 bytes',
    ],
  ])('%s', (_name, r, code, message) => {
    const f = failure(() => validateRequest(r, d));
    expect(f.code).toBe(code);
    expect(f.message).toContain(message);
  });

  it('names every bad message of a chat at once', () => {
    const f = failure(() =>
      validateRequest(req({ input: chat(['robot', 'a'], ['user', ''], ['system', 'b']) }), d),
    );
    expect(f.message).toBe(
      'invalid chat messages: chat.messages[0].role: must be one of system, user, assistant, got "robot"; ' +
        'chat.messages[1].content: must not be empty; chat.messages[2]: the last message must be from the user, got system',
    );
  });

  it.each([
    ['a prompt', req({}), { t: 'text', text: 'hi', bytes: 2 }],
    [
      'a prompt at the size limit',
      req({ input: { $case: 'prompt', value: 'x'.repeat(100) } }),
      { t: 'text', bytes: 100 },
    ],
    [
      'a chat',
      req({ input: chat(['system', 'be brief'], ['user', 'hi']), maxTokens: 1 }),
      { t: 'chat', bytes: 10 },
    ],
    [
      'token ids',
      req({ input: { $case: 'promptTokenIds', value: { ids: [1, 2, 3] } } }),
      { t: 'ids', count: 3 },
    ],
  ])('accepts %s', (_name, r, expected) => {
    expect(validateRequest(r, d)).toMatchObject(expected);
  });
});
