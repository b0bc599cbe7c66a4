/**
 * Incremental parser for server-sent events (text/event-stream) as vLLM sends them: `data: <json>\n\n`, ending
 * with `data: [DONE]`. Network chunks split anywhere (inside a line, inside a UTF-8 character, between the two
 * newlines), so bytes are buffered until an event is complete. Implements the parts of the WHATWG rules vLLM
 * uses: multi-line `data:` joined by "\n", comment lines (`:`) ignored, CRLF and CR line ends accepted.
 */

export class SseParser {
  private readonly decoder = new TextDecoder();
  private buffer = '';
  private data: string[] = [];

  /** Feeds one network chunk; returns the data payloads of the events it completed. */
  push(chunk: Uint8Array | string): string[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    return this.drainLines(false);
  }

  /** End of stream: a final event without its blank line still counts (servers that close abruptly). */
  end(): string[] {
    this.buffer += this.decoder.decode();
    const events = this.drainLines(true);
    if (this.data.length > 0) {
      events.push(this.data.join('\n'));
      this.data = [];
    }
    return events;
  }

  private drainLines(final: boolean): string[] {
    const events: string[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone trailing \r may be the first half of \r\n: wait for the next chunk unless the stream ended.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1 && !final)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      if (line === '') {
        if (this.data.length > 0) events.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        const v = line.slice(5);
        this.data.push(v.startsWith(' ') ? v.slice(1) : v);
      }
      // other fields (event:, id:, retry:) and comments (':') are not used by vLLM
    }
    if (final && this.buffer.startsWith('data:')) {
      const v = this.buffer.slice(5);
      this.data.push(v.startsWith(' ') ? v.slice(1) : v);
      this.buffer = '';
    }
    return events;
  }
}
