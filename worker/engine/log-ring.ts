/**
 * The last N lines an engine printed, kept for EngineExit.log_tail and for the detail of a failed start:
 * the reason vLLM died (`RuntimeError: Engine core initialization failed`, an OOM, a bad flag) is almost
 * always in its last lines. Bounded in lines and in bytes per line, since a crash can print megabytes.
 */

export class LogRing {
  private readonly lines: string[] = [];

  constructor(
    private readonly capacity = 50,
    private readonly maxLineLength = 2000,
  ) {}

  push(line: string): void {
    this.lines.push(line.length > this.maxLineLength ? `${line.slice(0, this.maxLineLength)}…` : line);
    if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
  }

  tail(n = this.capacity): string[] {
    return this.lines.slice(-n);
  }

  clear(): void {
    this.lines.length = 0;
  }
}

/** Splits a byte stream into lines (a chunk may end mid-line); `flush` returns the unterminated rest. */
export class LineSplitter {
  private rest = '';
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array | string): string[] {
    const text =
      this.rest + (typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true }));
    const parts = text.split(/\r?\n/);
    this.rest = parts.pop() ?? '';
    return parts;
  }

  flush(): string[] {
    const last = this.rest + this.decoder.decode();
    this.rest = '';
    return last === '' ? [] : [last];
  }
}
