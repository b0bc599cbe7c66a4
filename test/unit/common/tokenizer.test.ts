import { describe, expect, it } from 'vitest';
import { BEGIN_OF_TEXT, decode, EOT, encodeChat, encodePrompt } from '../../../common/tokenizer.ts';

describe('tokenizer (Llama 3)', () => {
  it('encodes a prompt with <|begin_of_text|> and round-trips the text', () => {
    const ids = encodePrompt('The capital of France is');
    expect(ids).toEqual([BEGIN_OF_TEXT, 791, 6864, 315, 9822, 374]);
    expect(decode(ids)).toBe('The capital of France is');
  });

  it('applies the Llama 3.1 chat template: system turn with the cutoff lines, each message, assistant header', () => {
    const ids = encodeChat([{ role: 'user', content: ' Say hi ' }]);
    expect(ids[0]).toBe(BEGIN_OF_TEXT);
    expect(ids.filter((i) => i === EOT)).toHaveLength(2);
    expect(decode(ids)).toBe(
      'system\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nuser\n\nSay hiassistant\n\n',
    );
    expect(encodeChat([{ role: 'user', content: 'Say hi' }], false).length).toBeLessThan(ids.length);
  });
});
