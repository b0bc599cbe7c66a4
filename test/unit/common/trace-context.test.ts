import { describe, expect, it } from 'vitest';
import { childContext, formatTraceparent, parseTraceparent } from '../../../common/trace-context.ts';

describe('trace context', () => {
  it('a child of a parent keeps its trace and sampling, with a new span', () => {
    const parent = parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    const child = childContext(parent);
    expect(child.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(child.sampled).toBe(false);
    expect(child.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(child.spanId).not.toBe('00f067aa0ba902b7');
  });

  it('without a parent, every context is a new trace whose traceparent parses back to it', () => {
    // more ids than one fill of the random pool holds, so a refill is crossed
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const c = childContext();
      expect(parseTraceparent(formatTraceparent(c))).toEqual(c);
      seen.add(c.traceId);
      seen.add(c.spanId);
    }
    expect(seen.size).toBe(1000);
  });

  it('refuses malformed and all-zero ids', () => {
    expect(parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeUndefined();
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01')).toBeUndefined();
    expect(parseTraceparent('garbage')).toBeUndefined();
  });
});
