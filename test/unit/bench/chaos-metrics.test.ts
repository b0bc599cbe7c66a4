import { describe, expect, it } from 'vitest';
import { streamStall, type Tracked, textMismatches } from '../../../bench/chaos/chaos-metrics.ts';
import { mismatchedTokens, referenceTokens } from '../../../bench/chaos/reference-tokens.ts';
import { StreamAudit } from '../../../bench/chaos/stream-audit.ts';

const PROMPT = [128000, 9906, 1917];

function tracked(p: Partial<Tracked> & { maxTokens?: number }): Tracked {
  return {
    request: { id: 'r', prompt: 'hi', maxTokens: p.maxTokens ?? 4, seed: 3 },
    audit: p.audit ?? new StreamAudit('r'),
    promptIds: p.promptIds ?? PROMPT,
    tokens: p.tokens ?? [],
    deltaTimes: p.deltaTimes ?? [],
    startedAt: 0,
    endedAt: p.endedAt,
    retries: 0,
  };
}

describe('referenceTokens', () => {
  it('is what a continuation from prompt + generated ids produces (the failover promise)', () => {
    const whole = referenceTokens(3, PROMPT, 10);
    const head = whole.slice(0, 4);
    expect(referenceTokens(3, PROMPT, 4)).toEqual(head);
    // The simulator hashes the whole context: the continuation's "prompt" is prompt + the first tokens.
    expect(new Set(whole).size).toBeGreaterThan(1);
    expect(referenceTokens(4, PROMPT, 10)).not.toEqual(whole);
  });

  it('counts differing and missing tokens', () => {
    expect(mismatchedTokens([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(mismatchedTokens([1, 9, 3], [1, 2, 3])).toBe(1);
    expect(mismatchedTokens([1, undefined, 3], [1, 2, 3])).toBe(1);
    expect(mismatchedTokens([1, 2], [1, 2, 3])).toBe(1);
  });
});

describe('textMismatches', () => {
  it('0 for a completed request with exactly the undisturbed tokens', () => {
    const audit = new StreamAudit('r');
    audit.delta(0, 4);
    audit.finished(4);
    expect(textMismatches(tracked({ audit, tokens: referenceTokens(3, PROMPT, 4) }))).toBe(0);
  });

  it('counts a wrong token, and a completed request short of its max_tokens', () => {
    const audit = new StreamAudit('r');
    audit.finished(4);
    const ref = referenceTokens(3, PROMPT, 4);
    expect(textMismatches(tracked({ audit, tokens: [ref[0], ref[1], (ref[2] ?? 0) + 1, ref[3]] }))).toBe(1);
    expect(textMismatches(tracked({ audit, tokens: ref.slice(0, 3) }))).toBe(1);
  });

  it('checks the prefix a failed request received', () => {
    const audit = new StreamAudit('r');
    audit.failed('UNAVAILABLE: gone');
    const ref = referenceTokens(3, PROMPT, 2);
    expect(textMismatches(tracked({ audit, tokens: ref }))).toBe(0);
    expect(textMismatches(tracked({ audit, tokens: [ref[1], ref[0]] }))).toBe(2);
  });
});

describe('streamStall', () => {
  it('counts streams with a token before the fault and not ended, and the longest pause each saw after it', () => {
    const all = [
      tracked({ deltaTimes: [100, 200, 900], endedAt: 950 }), // hit: paused from the fault (250) to 900
      tracked({ deltaTimes: [100], endedAt: 400 }), // hit: ended (an error) 150 after the fault
      tracked({ deltaTimes: [100, 200], endedAt: 240 }), // ended before the fault
      tracked({ deltaTimes: [300], endedAt: 500 }), // its first token came after the fault
    ];
    expect(streamStall(all, 250)).toEqual({ hit: 2, longestMs: 650 });
  });

  it('finds the pause after a resumed stream first caught up on tokens logged before the fault', () => {
    const resumed = tracked({ deltaTimes: [100, 260, 270, 280, 3280, 3300], endedAt: 3310 });
    expect(streamStall([resumed], 250)).toEqual({ hit: 1, longestMs: 3000 });
    // ... but not a pause that starts after the window
    expect(streamStall([resumed], 250, 20)).toEqual({ hit: 1, longestMs: 10 });
  });
});
