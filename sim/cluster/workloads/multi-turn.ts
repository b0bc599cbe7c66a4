/**
 * Multi-turn chat: conversations start as an open-loop arrival process; each has a system prompt shared by all
 * conversations, then turns. Turn k's prompt is the whole conversation so far (system prompt, every earlier user
 * message and answer) plus a new user message, so it grows, and every turn after the first reuses the previous
 * turn's prompt and answer as its prefix (the answer's tokens are the ones the engine sampled: outputKey). The
 * next turn arrives a think time (exponential) after the previous one, whatever the answer's latency (open
 * loop: the load does not adapt to the system under test).
 */
import { exponential, fork, seededRandom, uniformInt } from '../random.ts';
import { inArrivalOrder, type SimRequest, type Workload } from '../workload.ts';
import { type ArrivalSpec, arrivalTimesMs } from './arrivals.ts';
import { contentKey, type Segment, segmentTokens } from './prompt-segments.ts';

export interface MultiTurnSpec {
  /** Arrivals of new conversations. */
  conversations: ArrivalSpec;
  systemTokens: number;
  turns: { min: number; max: number };
  userTokens: { min: number; max: number };
  outputTokens: { min: number; max: number };
  thinkS: number;
  warmupS?: number;
  seed: number;
}

export function multiTurn(spec: MultiTurnSpec): Workload {
  const random = seededRandom(spec.seed);
  const starts = arrivalTimesMs(spec.conversations, fork(random));
  const draws = fork(random);
  const end = spec.conversations.durationS * 1000;
  const requests: Omit<SimRequest, 'id'>[] = [];
  starts.forEach((start, c) => {
    const history: Segment[] = [{ key: contentKey(6, spec.seed), tokens: spec.systemTokens }];
    const turns = uniformInt(draws, spec.turns.min, spec.turns.max);
    let at = start;
    for (let k = 0; k < turns && at < end; k++) {
      const user = uniformInt(draws, spec.userTokens.min, spec.userTokens.max);
      history.push({ key: contentKey(7, spec.seed, c, k), tokens: user });
      const outputTokens = uniformInt(draws, spec.outputTokens.min, spec.outputTokens.max);
      const outputKey = contentKey(8, spec.seed, c, k);
      requests.push({
        arrivalMs: at,
        tenant: `conversation-${c}`,
        segments: [...history],
        promptTokens: segmentTokens(history),
        outputTokens,
        outputKey,
      });
      history.push({ key: outputKey, tokens: outputTokens });
      at += exponential(draws, 1 / (spec.thinkS * 1000));
    }
  });
  return {
    name: 'multi_turn',
    requests: inArrivalOrder(requests),
    durationMs: end,
    warmupMs: (spec.warmupS ?? spec.conversations.rampS ?? 0) * 1000,
  };
}
