import { describe, expect, it } from 'vitest';
import { SseParser } from '../../../../worker/engine/sse.ts';

const enc = new TextEncoder();

describe('SseParser', () => {
  it('parses whole events', () => {
    const p = new SseParser();
    expect(p.push('data: {"a":1}\n\ndata: [DONE]\n\n')).toEqual(['{"a":1}', '[DONE]']);
  });

  it('reassembles events split at every possible byte boundary, including inside a UTF-8 character', () => {
    const text = 'data: {"text":"héllo 🦙"}\n\ndata: {"b":2}\r\n\r\ndata: [DONE]\n\n';
    const bytes = enc.encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(bytes.slice(0, cut)), ...p.push(bytes.slice(cut)), ...p.end()];
      expect(events, `cut at ${cut}`).toEqual(['{"text":"héllo 🦙"}', '{"b":2}', '[DONE]']);
    }
  });

  it('feeds one byte at a time', () => {
    const bytes = enc.encode('data: x\r\n\r\ndata: y\n\n');
    const p = new SseParser();
    const events: string[] = [];
    for (const b of bytes) events.push(...p.push(new Uint8Array([b])));
    expect(events).toEqual(['x', 'y']);
  });

  it('joins multi-line data, ignores comments and other fields, accepts data without a space', () => {
    const p = new SseParser();
    expect(p.push(': keepalive\nevent: message\nid: 3\ndata: a\ndata:b\n\n')).toEqual(['a\nb']);
  });

  it('returns a final event that lacks its blank line at end of stream', () => {
    const p = new SseParser();
    expect(p.push('data: {"a":1}\n\ndata: [DONE]')).toEqual(['{"a":1}']);
    expect(p.end()).toEqual(['[DONE]']);
  });

  it('returns nothing for blank lines without data', () => {
    const p = new SseParser();
    expect(p.push('\n\n\n')).toEqual([]);
    expect(p.end()).toEqual([]);
  });
});
