/**
 * Replays a benchmark workload through the pure step scheduler in virtual time: each step lasts what the latency
 * model says for its batch, no timers, no I/O, so a thousand-request offline benchmark of 405B replays in
 * milliseconds. Requests ignore EOS (vLLM's benchmark scripts set ignore_eos), so each produces exactly its
 * output length.
 */
import { meanDecodeContext, StepScheduler } from '../../sim/engine/model/step-scheduler.ts';

export interface StepTimer {
  stepMs(decodeSeqs: number, meanContext: number, prefillTokens: number): number;
}

export interface Workload {
  /** All at t=0 (benchmark_throughput / benchmark_latency), or a closed loop keeping this many in flight. */
  arrival:
    | { kind: 'all-at-once'; requests: number }
    | { kind: 'closed-loop'; concurrency: number; requests: number };
  inputTokens: number;
  outputTokens: number;
  /** A dataset replay: request i takes [input, output] tokens lengths[i] instead of the two above. */
  lengths?: readonly (readonly [number, number])[];
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  kvBlocks: number;
}

export interface ReplayResult {
  durationS: number;
  requestsPerS: number;
  inputTokensPerS: number;
  outputTokensPerS: number;
  /** Mean over requests of (last token - first token) / (output - 1), vLLM's TPOT. */
  meanTpotMs: number;
  meanTtftMs: number;
  steps: number;
  preemptions: number;
}

export function replay(w: Workload, timer: StepTimer): ReplayResult {
  const total = w.arrival.requests;
  if (w.lengths !== undefined && w.lengths.length < total)
    throw new RangeError(`${total} requests but lengths for ${w.lengths.length}`);
  const lengthsOf = (i: number): readonly [number, number] =>
    w.lengths?.[i] ?? [w.inputTokens, w.outputTokens];
  let maxModelLen = 0;
  for (let i = 0; i < total; i++) {
    const [input, output] = lengthsOf(i);
    maxModelLen = Math.max(maxModelLen, input + output);
  }
  const s = new StepScheduler({
    maxNumSeqs: w.maxNumSeqs,
    maxNumBatchedTokens: w.maxNumBatchedTokens,
    maxModelLen,
    policy: 'fcfs',
    numBlocks: w.kvBlocks,
    // Every prompt is distinct in these benchmarks (random or dataset prompts): no prefix hits to count.
    enablePrefixCaching: false,
  });
  const arrivedAt = new Map<string, number>();
  const firstAt = new Map<string, number>();
  const outputOf = new Map<string, number>();
  let submitted = 0;
  let now = 0;
  const submit = () => {
    const [input, output] = lengthsOf(submitted);
    const id = String(submitted++);
    // Distinct ids per request keep block hashes apart even if prefix caching were on.
    const promptIds = Array.from({ length: input }, (_, i) => (submitted * 7919 + i) % 120_000);
    s.add({ id, promptIds, maxTokens: output, priority: 0 });
    arrivedAt.set(id, now);
    outputOf.set(id, output);
  };
  const initial = w.arrival.kind === 'all-at-once' ? total : Math.min(total, w.arrival.concurrency);
  for (let i = 0; i < initial; i++) submit();
  let steps = 0;
  let preemptions = 0;
  let ttftSum = 0;
  let tpotSum = 0;
  let tpotCount = 0;
  let finished = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  const noStop = () => ({ token: 1, stop: false });
  while (s.hasWork) {
    const plan = s.nextStep();
    if (plan.scheduled.length === 0) throw new Error('the scheduler stalled with work left');
    steps++;
    preemptions += plan.preempted.length;
    now += timer.stepMs(plan.decodeSeqs, meanDecodeContext(plan), plan.prefillTokens);
    for (const t of s.completeStep(plan, noStop).sampled) {
      if (t.first) {
        firstAt.set(t.id, now);
        ttftSum += now - (arrivedAt.get(t.id) ?? 0);
      }
      if (t.finish === null) continue;
      finished++;
      const output = outputOf.get(t.id) ?? 1;
      inputTokens += lengthsOf(Number(t.id))[0];
      outputTokens += output;
      // vLLM's benchmark scripts average TPOT over requests of more than one output token.
      if (output > 1) {
        tpotSum += (now - (firstAt.get(t.id) ?? now)) / (output - 1);
        tpotCount++;
      }
      if (w.arrival.kind === 'closed-loop' && submitted < total) submit();
    }
  }
  const durationS = now / 1000;
  return {
    durationS,
    requestsPerS: finished / durationS,
    inputTokensPerS: inputTokens / durationS,
    outputTokensPerS: outputTokens / durationS,
    meanTpotMs: tpotCount > 0 ? tpotSum / tpotCount : 0,
    meanTtftMs: ttftSum / finished,
    steps,
    preemptions,
  };
}
