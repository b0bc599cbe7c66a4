/**
 * A thread that builds the cluster simulator's prompts ahead of it: what the simulator spent building prompts
 * (token ids of 13M tokens and their block hashes at 64 groups) and hashing its answers' blocks in the engines
 * depends only on the workload, not on the simulation, so a second core can do it while the first simulates.
 *
 * Started once (~300 ms: a worker and its TypeScript loader) and used by many runs, one at a time. A run sends
 * the thread its requests' segments and answers as flat arrays with a shared buffer for every result
 * (shared-prompts.ts); the thread builds them in the requests' order (arrival order) and publishes its progress
 * after each, so the simulator waits only when it dispatches a request the thread has not reached. A failure in
 * the thread comes back as a PromptThreadError from the run; a thread that died, as one after `stallMs` without
 * progress (the simulator runs synchronously: it cannot hear the worker's exit event during a run).
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { BLOCK_SIZE } from '../../common/hardware/memory.ts';
import type { Prompt } from './prompt-cache.ts';
import type { PromptSource, RunPrompts } from './run-prompts.ts';
import { type PromptRunMessage, PromptThreadError, SharedPrompts } from './shared-prompts.ts';
import type { SimRequest } from './workload.ts';

export { PromptThreadError } from './shared-prompts.ts';

export interface PromptThreadOptions {
  /** A run fails after this long without the thread's progress while the simulator waits. Default 30 s. */
  stallMs?: number;
}

export class PromptThread implements PromptSource {
  /** Why the thread can take no more runs (it exited or threw outside a run), once it happened. */
  private ended: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly stallMs: number,
  ) {
    worker.on('error', (e) => {
      this.ended ??= new PromptThreadError('the prompt thread failed', { cause: e });
    });
    worker.on('exit', (code) => {
      this.ended ??= new PromptThreadError(`the prompt thread has exited (code ${code})`);
    });
  }

  /** Starts the thread; resolves once it is ready for a run. */
  static async start(options: PromptThreadOptions = {}): Promise<PromptThread> {
    const worker = new Worker(new URL('./prompt-thread-entry.mjs', import.meta.url));
    // once() rejects on the worker's 'error' (a module that failed to load).
    await once(worker, 'message');
    return new PromptThread(worker, options.stallMs ?? 30_000);
  }

  open(requests: readonly SimRequest[]): RunPrompts {
    if (this.ended) throw this.ended;
    const workload = flatten(requests);
    const shared = new SharedPrompts(workload.promptTokens, workload.outputTokens, BLOCK_SIZE);
    const message: PromptRunMessage = { ...workload, buffer: shared.buffer, blockSize: BLOCK_SIZE };
    // Moved, not copied; the token counts are copied: the shared buffer is read by them here too.
    this.worker.postMessage(message, [
      workload.segmentStart.buffer,
      workload.segmentKeys.buffer,
      workload.segmentTokens.buffer,
      workload.outputKeys.buffer,
    ]);
    const stallMs = this.stallMs;
    return {
      prompt(req: SimRequest): Prompt {
        shared.awaitRequest(req.id, stallMs);
        return { length: req.promptTokens, blocks: shared.promptBlocks(req.id), tail: shared.tail(req.id) };
      },
      answerBlocks(req: SimRequest): Float64Array {
        shared.awaitRequest(req.id, stallMs);
        return shared.answerBlocks(req.id);
      },
      // The shared buffer goes with the run.
      release: () => {},
      close: () => shared.cancel(),
    };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** The requests' prompts and answers as flat arrays (what the thread needs of them, in their order). */
function flatten(requests: readonly SimRequest[]) {
  const n = requests.length;
  const segmentStart = new Int32Array(n + 1);
  for (let i = 0; i < n; i++)
    segmentStart[i + 1] = (segmentStart[i] as number) + (requests[i] as SimRequest).segments.length;
  const segments = segmentStart[n] as number;
  const flat = {
    segmentStart,
    segmentKeys: new Float64Array(segments),
    segmentTokens: new Int32Array(segments),
    promptTokens: new Int32Array(n),
    outputKeys: new Float64Array(n),
    outputTokens: new Int32Array(n),
  };
  requests.forEach((req, i) => {
    // The thread answers by index, the simulator asks by id.
    if (req.id !== i) throw new RangeError(`request ${req.id} is at index ${i}: ids must be array indices`);
    let at = segmentStart[i] as number;
    for (const s of req.segments) {
      flat.segmentKeys[at] = s.key;
      flat.segmentTokens[at++] = s.tokens;
    }
    flat.promptTokens[i] = req.promptTokens;
    flat.outputKeys[i] = req.outputKey;
    flat.outputTokens[i] = req.outputTokens;
  });
  return flat;
}
