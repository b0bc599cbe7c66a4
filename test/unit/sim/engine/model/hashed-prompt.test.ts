import { describe, expect, it } from 'vitest';
import { promptBlockHashes } from '../../../../../common/block-hash.ts';
import { seededRandom, uniformInt } from '../../../../../sim/cluster/random.ts';
import {
  type SchedulerPrompt,
  StepScheduler,
  type StepSchedulerConfig,
} from '../../../../../sim/engine/model/step-scheduler.ts';

const BLOCK = 16;

/** The hashed form of a prompt (step-plan.ts SchedulerPrompt), from its whole token ids. */
function hashed(ids: readonly number[]): SchedulerPrompt {
  const full = Math.floor(ids.length / BLOCK) * BLOCK;
  return {
    promptLength: ids.length,
    blockHashes: Float64Array.from(promptBlockHashes(ids)),
    promptTail: Int32Array.from(ids.slice(full)),
  };
}

/** Every answer's length: long enough that running requests outgrow a small cache and are preempted. */
const ANSWER = 40;

const answer = (id: string, index: number) => (Number(id.slice(1)) * 977 + index * 31) % 20_000;

/** The hashes of the full blocks after the prompt's, over the prompt followed by its whole answer. */
function answerHashes(id: string, ids: readonly number[]): Float64Array {
  const whole = [...ids, ...Array.from({ length: ANSWER }, (_, i) => answer(id, i))];
  return Float64Array.from(promptBlockHashes(whole).slice(Math.floor(ids.length / BLOCK)));
}

/** A small scheduler for the tests of what add() takes and refuses. */
const TINY: StepSchedulerConfig = {
  maxNumSeqs: 2,
  maxNumBatchedTokens: 64,
  maxModelLen: 256,
  policy: 'fcfs',
  numBlocks: 16,
};

describe('StepScheduler with prompts as block hashes and a tail', () => {
  it('schedules exactly as with the whole token ids, with or without answer block hashes: prefix hits, answers completing the tail block, preemption', () => {
    const cfg: StepSchedulerConfig = {
      maxNumSeqs: 6,
      maxNumBatchedTokens: 96,
      maxModelLen: 1024,
      policy: 'fcfs',
      numBlocks: 40,
    };
    // Fixed answers, as the cluster simulator runs its groups: the answer's first block is hashed from the
    // prompt's tail and answer tokens, and a later prompt quoting prompt + answer must hit those blocks.
    const byIds = new StepScheduler(cfg, (req, index) => answer(req.id, index));
    const byHashes = new StepScheduler(cfg, (req, index) => answer(req.id, index));
    // Given its answer's block hashes too, a scheduler must never need to ask for an answer token.
    const byAllHashes = new StepScheduler(cfg, () => {
      throw new Error('an answer token was asked for although its blocks came hashed');
    });
    const random = seededRandom(17);
    const heads = [0, 1, 2].map((h) => Array.from({ length: 37 + 21 * h }, (_, i) => 9000 * h + i));
    const asked: number[][] = [];
    let added = 0;
    let steps = 0;
    while (added < 80 || byIds.hasWork) {
      if (added < 80 && random() < 0.2) {
        const id = `r${added++}`;
        // Half quote an earlier prompt and its whole answer (a next turn), the rest start from a shared head.
        const pick = asked.length > 0 && random() < 0.5 ? uniformInt(random, 0, asked.length - 1) : -1;
        // Short enough that prompt and answer fit the cache.
        const earlier = pick >= 0 && (asked[pick] as number[]).length < 200 ? pick : -1;
        const head =
          earlier >= 0
            ? [
                ...(asked[earlier] as number[]),
                ...Array.from({ length: ANSWER }, (_, i) => answer(`r${earlier}`, i)),
              ]
            : (heads[uniformInt(random, 0, heads.length - 1)] as number[]);
        const ids = [
          ...head,
          ...Array.from({ length: uniformInt(random, 1, 40) }, (_, i) => 50_000 + added * 100 + i),
        ];
        asked.push(ids);
        expect(byHashes.cachedPrefixTokens(hashed(ids))).toBe(byIds.cachedPrefixTokens({ promptIds: ids }));
        byIds.add({ id, promptIds: ids, maxTokens: ANSWER, priority: 0 });
        byHashes.add({ id, ...hashed(ids), maxTokens: ANSWER, priority: 0 });
        byAllHashes.add({
          id,
          ...hashed(ids),
          answerBlockHashes: answerHashes(id, ids),
          maxTokens: ANSWER,
          priority: 0,
        });
      }
      if (!byIds.hasWork) continue;
      const plan = byIds.planStep();
      expect(byHashes.planStep()).toEqual(plan);
      expect(byAllHashes.planStep()).toEqual(plan);
      const a = byIds.finishStep();
      for (const s of [byHashes, byAllHashes]) {
        const b = s.finishStep();
        expect(b.sampledTokens).toBe(a.sampledTokens);
        expect(b.firstTokens.map((r) => r.id)).toEqual(a.firstTokens.map((r) => r.id));
        expect(b.finished.map((r) => r.id)).toEqual(a.finished.map((r) => r.id));
        expect(s.kvUsage).toBe(byIds.kvUsage);
      }
      steps++;
    }
    expect(byHashes.totals).toEqual(byIds.totals);
    expect(byAllHashes.totals).toEqual(byIds.totals);
    expect(steps).toBeGreaterThan(100);
    expect(byIds.totals.preemptions).toBeGreaterThan(0);
    expect(byIds.totals.prefixHitTokens).toBeGreaterThan(0);
  });

  it('refuses a prompt whose parts do not agree, saying which', () => {
    const s = new StepScheduler(TINY);
    const ids = Array.from({ length: 40 }, (_, i) => i);
    const good = hashed(ids);
    const add = (prompt: SchedulerPrompt) => () => s.add({ id: 'x', ...prompt, maxTokens: 1, priority: 0 });
    expect(add({ promptIds: ids, promptTail: good.promptTail })).toThrow(
      /request x: a prompt comes as promptIds or as promptLength with promptTail, not both/,
    );
    expect(add({ promptLength: 40, promptTail: good.promptTail })).toThrow(
      /promptIds, or promptLength with blockHashes and promptTail/,
    );
    expect(add({})).toThrow(/promptIds, or promptLength with blockHashes and promptTail/);
    expect(add({ ...good, promptTail: Int32Array.of(1, 2, 3) })).toThrow(
      /a promptTail of 3 tokens for a prompt of 40 \(8 after its last full block\)/,
    );
    expect(add({ ...good, promptLength: 48 })).toThrow(/2 block hashes for a prompt of 3 full blocks/);
    expect(add({ ...good, promptLength: 40.5 })).toThrow(
      /promptLength must be a whole number of tokens, got 40.5/,
    );
    expect(add({ promptLength: 0, blockHashes: [], promptTail: [] })).toThrow(/the prompt is empty/);
    expect(() => s.cachedPrefixTokens({ ...good, blockHashes: [1] })).toThrow(
      /1 block hashes for a prompt of 2 full blocks/,
    );
    // Nothing refused was kept: the good form is taken under the same id.
    add(good)();
    expect(s.numWaiting).toBe(1);
  });

  it('takes answer block hashes only for fixed answers, after the prompt hashes, one per full block', () => {
    const ids = Array.from({ length: 40 }, (_, i) => i);
    // 40 prompt tokens + 40 answer tokens: full blocks 2 (prompt and answer), 3 and 4 after the prompt's 2.
    const request = { id: 'x', ...hashed(ids), maxTokens: 40, priority: 0 };
    const sampled = new StepScheduler(TINY);
    expect(() => sampled.add({ ...request, answerBlockHashes: [1, 2, 3] })).toThrow(
      /request x: answerBlockHashes need answers fixed in advance/,
    );
    const fixed = new StepScheduler(TINY, () => 7);
    expect(() => fixed.add({ ...request, answerBlockHashes: [1, 2] })).toThrow(
      /request x: 2 answer block hashes for 3 full blocks after a prompt of 40 tokens with max_tokens 40/,
    );
    expect(() =>
      fixed.add({ id: 'x', promptIds: ids, answerBlockHashes: [1, 2, 3], maxTokens: 40, priority: 0 }),
    ).toThrow(/answerBlockHashes continue the chain of blockHashes/);
    fixed.add({ ...request, answerBlockHashes: [1, 2, 3] });
    expect(fixed.numWaiting).toBe(1);
  });
});
