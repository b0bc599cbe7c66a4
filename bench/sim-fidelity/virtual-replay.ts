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
  const s = new StepScheduler({
    maxNumSeqs: w.maxNumSeqs,
    maxNumBatchedTokens: w.maxNumBatchedTokens,
    maxModelLen: w.inputTokens + w.outputTokens,
    policy: 'fcfs',
    numBlocks: w.kvBlocks,
    // Every prompt is distinct in these benchmarks (random or dataset prompts): no prefix hits to count.
    enablePrefixCaching: false,
  });
  const total = w.arrival.requests;
  const arrivedAt = new Map<string, number>();
  const firstAt = new Map<string, number>();
  let submitted = 0;
  let now = 0;
  const submit = () => {
    const id = String(submitted++);
    // Distinct ids per request keep block hashes apart even if prefix caching were on.
    const promptIds = Array.from({ length: w.inputTokens }, (_, i) => (submitted * 7919 + i) % 120_000);
    s.add({ id, promptIds, maxTokens: w.outputTokens, priority: 0 });
    arrivedAt.set(id, now);
  };
  const initial = w.arrival.kind === 'all-at-once' ? total : Math.min(total, w.arrival.concurrency);
  for (let i = 0; i < initial; i++) submit();
  let steps = 0;
  let preemptions = 0;
  let ttftSum = 0;
  let tpotSum = 0;
  let finished = 0;
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
      if (w.outputTokens > 1) tpotSum += (now - (firstAt.get(t.id) ?? now)) / (w.outputTokens - 1);
      if (w.arrival.kind === 'closed-loop' && submitted < total) submit();
    }
  }
  const durationS = now / 1000;
  return {
    durationS,
    requestsPerS: finished / durationS,
    inputTokensPerS: (finished * w.inputTokens) / durationS,
    outputTokensPerS: (finished * w.outputTokens) / durationS,
    meanTpotMs: tpotSum / finished,
    meanTtftMs: ttftSum / finished,
    steps,
    preemptions,
  };
}
