/**
 * Exact Llama 3 token counts for the gateway's context check, off the event loop. llama3-tokenizer-js runs at
 * ~220k tokens/s on one core (DESIGN.md), so a 100k-token prompt would stall every other stream for ~0.5 s if
 * counted inline; a worker thread keeps the gateway responsive while one long prompt is counted.
 * A short text (at most INLINE_MAX_CHARS) is encoded inline (common/tokenizer.ts, the same library and
 * options): the round trip to the thread (two messages) costs the event loop more than its BPE does.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { encodeText } from '../../common/tokenizer.ts';

/**
 * Texts up to this many UTF-16 units are encoded on the caller's thread: tens of microseconds of BPE (at most
 * 3 bytes each, so at most 192 tokens), less than a message to the thread and back.
 */
export const INLINE_MAX_CHARS = 64;

export interface TokenCounter {
  /** Tokens of `text` with no special tokens added. */
  count(text: string): Promise<number>;
  /**
   * The token ids of `text` with no special tokens added, for the dispatcher's prompt block hashes (a counter
   * without it: text prompts are routed by load alone).
   */
  encode?(text: string): Promise<number[]>;
  close(): Promise<void>;
}

// Plain JS evaluated in the thread (no TypeScript loader there); it loads the tokenizer by absolute path.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.tokenizerUrl).then((mod) => {
  const tokenizer = mod.default;
  parentPort.on('message', ({ id, text, ids }) => {
    try {
      const encoded = tokenizer.encode(text, { bos: false, eos: false });
      if (ids) {
        const out = Int32Array.from(encoded);
        parentPort.postMessage({ id, ids: out }, [out.buffer]);
      } else parentPort.postMessage({ id, count: encoded.length });
    } catch (e) {
      parentPort.postMessage({ id, error: String(e && e.message || e) });
    }
  });
  parentPort.postMessage({ ready: true });
});
`;

interface Reply {
  id?: number;
  count?: number;
  ids?: Int32Array;
  error?: string;
  ready?: boolean;
}

export class ThreadTokenCounter implements TokenCounter {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor() {
    const require = createRequire(import.meta.url);
    const tokenizerUrl = new URL(`file://${require.resolve('llama3-tokenizer-js')}`).href;
    this.worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { tokenizerUrl } });
    // Idle, the thread must not keep the controller alive.
    this.worker.unref();
    this.worker.on('message', (m: Reply) => {
      if (m.id === undefined) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) this.worker.unref();
      if (!w) return;
      if (m.error !== undefined) w.reject(new Error(`tokenizer failed: ${m.error}`));
      else w.resolve(m);
    });
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`tokenizer thread exited with code ${code}`)));
  }

  async count(text: string): Promise<number> {
    if (text.length <= INLINE_MAX_CHARS && !this.failure) return encodeText(text).length;
    return (await this.ask(text, false)).count ?? 0;
  }

  async encode(text: string): Promise<number[]> {
    if (text.length <= INLINE_MAX_CHARS && !this.failure) return encodeText(text);
    return Array.from((await this.ask(text, true)).ids ?? []);
  }

  private ask(text: string, ids: boolean): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ id, text, ids });
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('tokenizer closed');
    await this.worker.terminate();
  }

  private failAll(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }
}
