import { describe, expect, it } from 'vitest';
import { LineSplitter, LogRing } from '../../../../worker/engine/log-ring.ts';

describe('LogRing', () => {
  it('keeps only the last lines, truncating long ones', () => {
    const r = new LogRing(3, 5);
    for (const l of ['a', 'b', 'c', 'd', '0123456789']) r.push(l);
    expect(r.tail()).toEqual(['c', 'd', '01234…']);
    expect(r.tail(1)).toEqual(['01234…']);
    r.clear();
    expect(r.tail()).toEqual([]);
  });
});

describe('LineSplitter', () => {
  it('splits lines across chunks, CRLF included, and flushes the unterminated rest', () => {
    const s = new LineSplitter();
    expect(s.push('one\r\ntw')).toEqual(['one']);
    expect(s.push('o\nthree')).toEqual(['two']);
    expect(s.flush()).toEqual(['three']);
    expect(s.flush()).toEqual([]);
  });

  it('does not break a UTF-8 character split between chunks', () => {
    const bytes = new TextEncoder().encode('é\n');
    const s = new LineSplitter();
    expect([...s.push(bytes.slice(0, 1)), ...s.push(bytes.slice(1))]).toEqual(['é']);
  });
});
