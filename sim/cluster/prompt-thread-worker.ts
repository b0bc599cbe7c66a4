/**
 * The prompt thread itself (prompt-thread.ts starts it; prompt-thread-entry.mjs loads this file): for each run
 * the simulator sends, every request's prompt and answer, in the requests' order, into the run's shared buffer
 * (shared-prompts.ts). Prompt + answer is built as one prompt whose last segment is the answer (the answer's
 * token i is tokenOf(outputKey, i), as the engines' answerToken gives it), so PromptCache hashes the blocks after
 * the prompt's too, the one straddling prompt and answer included. Nothing of a run outlives it.
 */
import { parentPort } from 'node:worker_threads';
import { PromptCache } from './prompt-cache.ts';
import { type PromptRunMessage, SharedPrompts } from './shared-prompts.ts';
import { type Segment, writePromptIds } from './workloads/prompt-segments.ts';

function run(m: PromptRunMessage): void {
  const shared = new SharedPrompts(m.promptTokens, m.outputTokens, m.blockSize, m.buffer);
  try {
    const cache = new PromptCache(m.blockSize);
    const n = m.promptTokens.length;
    for (let i = 0; i < n && !shared.cancelled; i++) {
      const prompt: Segment[] = [];
      for (let j = m.segmentStart[i] as number; j < (m.segmentStart[i + 1] as number); j++)
        prompt.push({ key: m.segmentKeys[j] as number, tokens: m.segmentTokens[j] as number });
      const length = m.promptTokens[i] as number;
      const answer = { key: m.outputKeys[i] as number, tokens: m.outputTokens[i] as number };
      const whole = cache.prompt([...prompt, answer]);
      // The buffer was sized from the requests' token counts: a prompt of another length would not fit.
      if (whole.length !== length + answer.tokens)
        throw new RangeError(
          `request ${i}: its segments hold ${whole.length - answer.tokens} tokens, its promptTokens say ${length}`,
        );
      shared.blocks(i).set(whole.blocks);
      cache.release(whole);
      const tail = shared.tail(i);
      writePromptIds(prompt, length - tail.length, length, tail);
      shared.publish(i + 1);
    }
  } catch (e) {
    shared.fail(e);
  }
}

if (parentPort === null) throw new Error('prompt-thread-worker.ts runs only as a worker thread');
const port = parentPort;
port.on('message', run);
port.postMessage('ready');
