/**
 * The controller's tokenizer thread: counts for the context check and token ids for the dispatcher's prompt
 * block hashes, both exactly what common/tokenizer.ts (the engine simulator's tokenizer) gives.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { encodeText } from '../../../../common/tokenizer.ts';
import { INLINE_MAX_CHARS, ThreadTokenCounter } from '../../../../controller/gateway/token-counter.ts';

const counter = new ThreadTokenCounter();
afterAll(() => counter.close());

describe('ThreadTokenCounter', () => {
  it('encodes and counts on its thread exactly as the engine tokenises', async () => {
    const text = 'Tell me about the Rocky Mountains — 14,000 ft peaks, 🏔️ and all. '.repeat(20);
    const ids = await counter.encode(text);
    expect(ids).toEqual(encodeText(text));
    expect(await counter.count(text)).toBe(ids.length);
  });

  it('answers concurrent requests each with its own text, short ones (encoded inline) and long ones', async () => {
    const long = (w: string) => `${w} `.repeat(Math.ceil((INLINE_MAX_CHARS + 1) / (w.length + 1)));
    const texts = ['alpha', 'beta gamma', long('delta'), 'epsilon zeta', long('eta theta')];
    expect(await Promise.all(texts.map((t) => counter.encode(t)))).toEqual(texts.map(encodeText));
    expect(await Promise.all(texts.map((t) => counter.count(t)))).toEqual(
      texts.map((t) => encodeText(t).length),
    );
  });

  it('refuses work once closed, with the reason', async () => {
    const closed = new ThreadTokenCounter();
    await closed.close();
    await expect(closed.encode('x')).rejects.toThrow(/tokenizer closed/);
    await expect(closed.count('x'.repeat(INLINE_MAX_CHARS + 1))).rejects.toThrow(/tokenizer closed/);
  });
});
