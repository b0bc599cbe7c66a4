/**
 * One run's prompts as the prompt thread (prompt-thread.ts) builds them for the cluster simulator: in one
 * SharedArrayBuffer that both threads view, laid out from the requests' token counts alone, so the simulator
 * sizes it before the thread starts and both sides find request i's results at the same place:
 *
 *   control  Int32 x 4            progress (requests done, in array order; FAILED once the thread failed),
 *                                 cancelled (the run is over: stop), the error message's length in bytes
 *   message  ERROR_BYTES          the thread's error, UTF-8
 *   tails    Int32 x n x block    request i's prompt tail (the ids after its last full block) from i x block
 *   hashes   Float64 x sum_i floor((prompt_i + output_i) / block)
 *                                 request i's full blocks of prompt + answer from hashStart[i]: the prompt's,
 *                                 then those after it (step-plan.ts SchedulerRequest.answerBlockHashes)
 *
 * The thread publishes its progress after each request; the simulator waits only for a request the thread has
 * not reached yet. Progress is the word both wait on, and a failure changes it too, so a waiter never sleeps
 * through one.
 */

/** What the simulator sends the thread for a run: the workload's prompts and answers, flat. */
export interface PromptRunMessage {
  buffer: SharedArrayBuffer;
  blockSize: number;
  /** Request i's segments are [segmentStart[i], segmentStart[i + 1]) of segmentKeys and segmentTokens. */
  segmentStart: Int32Array;
  segmentKeys: Float64Array;
  segmentTokens: Int32Array;
  /** What each request says of itself: its prompt's tokens (its segments must hold as many), its answer. */
  promptTokens: Int32Array;
  outputKeys: Float64Array;
  outputTokens: Int32Array;
}

const PROGRESS = 0;
const CANCELLED = 1;
const ERROR_LENGTH = 2;
const CONTROL_SLOTS = 4;
/** Progress once the thread failed (any request's wait ends, with its error). */
const FAILED = -1;
const ERROR_BYTES = 4096;

export class PromptThreadError extends Error {
  override readonly name = 'PromptThreadError';
}

export class SharedPrompts {
  readonly buffer: SharedArrayBuffer;
  private readonly control: Int32Array;
  private readonly message: Uint8Array;
  private readonly tails: Int32Array;
  private readonly hashes: Float64Array;
  /** Where request i's hashes start; hashStart[n] is their total. */
  private readonly hashStart: Float64Array;

  /** `buffer`: the simulator's, as the thread received it; without it, a new one of the right size. */
  constructor(
    private readonly promptTokens: Int32Array,
    outputTokens: Int32Array,
    private readonly blockSize: number,
    buffer?: SharedArrayBuffer,
  ) {
    const n = promptTokens.length;
    this.hashStart = new Float64Array(n + 1);
    for (let i = 0; i < n; i++)
      this.hashStart[i + 1] =
        (this.hashStart[i] as number) +
        Math.floor(((promptTokens[i] as number) + (outputTokens[i] as number)) / blockSize);
    const tailsAt = CONTROL_SLOTS * 4 + ERROR_BYTES;
    const hashesAt = Math.ceil((tailsAt + n * blockSize * 4) / 8) * 8;
    const bytes = hashesAt + (this.hashStart[n] as number) * 8;
    this.buffer = buffer ?? new SharedArrayBuffer(bytes);
    if (this.buffer.byteLength !== bytes)
      throw new RangeError(
        `a shared buffer of ${this.buffer.byteLength} bytes for prompts that need ${bytes}`,
      );
    this.control = new Int32Array(this.buffer, 0, CONTROL_SLOTS);
    this.message = new Uint8Array(this.buffer, CONTROL_SLOTS * 4, ERROR_BYTES);
    this.tails = new Int32Array(this.buffer, tailsAt, n * blockSize);
    this.hashes = new Float64Array(this.buffer, hashesAt, this.hashStart[n] as number);
  }

  /** Request i's prompt tail: where the thread writes it, and where the simulator reads it once awaited. */
  tail(i: number): Int32Array {
    const at = i * this.blockSize;
    return this.tails.subarray(at, at + ((this.promptTokens[i] as number) % this.blockSize));
  }

  /** Where the thread writes request i's hashes of prompt + answer (promptBlocks, then answerBlocks). */
  blocks(i: number): Float64Array {
    return this.hashes.subarray(this.hashStart[i], this.hashStart[i + 1]);
  }

  promptBlocks(i: number): Float64Array {
    return this.hashes.subarray(this.hashStart[i], this.answerStart(i));
  }

  answerBlocks(i: number): Float64Array {
    return this.hashes.subarray(this.answerStart(i), this.hashStart[i + 1]);
  }

  // The thread's side.

  /** Requests [0, done) are written. */
  publish(done: number): void {
    Atomics.store(this.control, PROGRESS, done);
    Atomics.notify(this.control, PROGRESS);
  }

  fail(error: unknown): void {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    const { written } = new TextEncoder().encodeInto(text, this.message);
    Atomics.store(this.control, ERROR_LENGTH, written);
    this.publish(FAILED);
  }

  get cancelled(): boolean {
    return Atomics.load(this.control, CANCELLED) !== 0;
  }

  // The simulator's side.

  /**
   * Returns once request i is written. Blocks the thread meanwhile (the simulator has nothing else to do), at
   * most `stallMs` without progress: a thread that died says nothing.
   */
  awaitRequest(i: number, stallMs: number): void {
    for (;;) {
      const done = Atomics.load(this.control, PROGRESS);
      if (done > i) return;
      if (done === FAILED) {
        const length = Atomics.load(this.control, ERROR_LENGTH);
        // A copy: TextDecoder takes no view of shared memory.
        const text = new TextDecoder().decode(this.message.slice(0, length));
        throw new PromptThreadError(`the prompt thread failed: ${text}`);
      }
      if (Atomics.wait(this.control, PROGRESS, done, stallMs) === 'timed-out')
        throw new PromptThreadError(
          `the prompt thread made no progress in ${stallMs} ms (at request ${done} of ` +
            `${this.promptTokens.length}, the simulator waits for ${i}): has it died?`,
        );
    }
  }

  /** The run is over: the thread stops at its next request. */
  cancel(): void {
    Atomics.store(this.control, CANCELLED, 1);
  }

  private answerStart(i: number): number {
    return (this.hashStart[i] as number) + Math.floor((this.promptTokens[i] as number) / this.blockSize);
  }
}
