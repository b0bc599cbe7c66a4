import llama3Tokenizer from 'llama3-tokenizer-js';
import { describe, expect, it } from 'vitest';
import { CorralError } from '../../../../common/errors.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { checkContext } from '../../../../controller/gateway/context-check.ts';
import type { PromptInput } from '../../../../controller/gateway/request-validation.ts';
import type { TokenCounter } from '../../../../controller/gateway/token-counter.ts';

const d = compileControllerConfig({
  deployments: [{ name: 'm', model: 'm', maxModelLen: 100, defaultMaxTokens: 20 }],
}).deployments[0]!;

/** The same tokenizer in-process, counting how often it was asked. */
function counter(): TokenCounter & { calls: number } {
  const c = {
    calls: 0,
    count: async (text: string) => {
      c.calls += 1;
      return llama3Tokenizer.encode(text, { bos: false, eos: false }).length;
    },
    close: async () => {},
  };
  return c;
}
const text = (t: string): PromptInput => ({ t: 'text', text: t, bytes: Buffer.byteLength(t) });
// 'hello ' repeated: one token per repetition (checked below), 6 bytes each.
const hellos = (n: number) => 'hello '.repeat(n).trimEnd();

async function failure(p: Promise<unknown>): Promise<CorralError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CorralError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('checkContext', () => {
  it('skips tokenisation when bytes alone prove the request fits', async () => {
    const c = counter();
    expect(await checkContext(text('short prompt'), 10, d, c)).toEqual({
      maxTokens: 10,
      promptTokens: undefined,
    });
    expect(c.calls).toBe(0);
  });

  it('counts exactly when the bound is inconclusive, and accepts what fits', async () => {
    const c = counter();
    expect(llama3Tokenizer.encode(hellos(50), { bos: false, eos: false })).toHaveLength(50);
    // 299 bytes: the bound says maybe not; 50 tokens + BOS + 40 <= 100 does fit.
    expect(await checkContext(text(hellos(50)), 40, d, c)).toEqual({ maxTokens: 40, promptTokens: 51 });
    expect(c.calls).toBe(1);
  });

  it('prompt alone over the context: vLLM wording', async () => {
    const e = await failure(checkContext(text(hellos(120)), 10, d, counter()));
    expect(e.code).toBe('invalid_argument');
    expect(e.message).toBe(
      "This model's maximum context length is 100 tokens. However, your request has 121 input tokens. Please reduce the length of the input messages.",
    );
  });

  it('prompt + max_tokens over the context: vLLM wording', async () => {
    const e = await failure(checkContext(text(hellos(50)), 60, d, counter()));
    expect(e.code).toBe('invalid_argument');
    expect(e.message).toBe(
      "'max_tokens' or 'max_completion_tokens' is too large: 60. This model's maximum context length is 100 tokens and your request has 51 input tokens (60 > 100 - 51).",
    );
  });

  it('an unset max_tokens takes the default, clamped to what the context leaves', async () => {
    expect(await checkContext(text('hi'), undefined, d, counter())).toEqual({
      maxTokens: 20,
      promptTokens: undefined,
    });
    expect(await checkContext(text(hellos(89)), undefined, d, counter())).toEqual({
      maxTokens: 10,
      promptTokens: 90,
    });
  });

  it('counts token ids without the tokenizer', async () => {
    const c = counter();
    const e = await failure(checkContext({ t: 'ids', count: 95 }, 10, d, c));
    expect(e.message).toContain('(10 > 100 - 95)');
    expect(c.calls).toBe(0);
  });

  it('a chat counts its template tokens: BOS + 5 per message + 4 for the reply header', async () => {
    const messages = [
      { role: 'system', content: hellos(10) },
      { role: 'user', content: hellos(30) },
    ];
    const r = await checkContext({ t: 'chat', messages, bytes: 59 + 179 }, 40, d, counter());
    expect(r.promptTokens).toBe(1 + 2 * 5 + 4 + 40);
  });
});
