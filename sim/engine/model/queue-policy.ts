/**
 * vLLM V1's two scheduling policies (--scheduling-policy) over the step scheduler's queues: where a request
 * waits, and which running request is preempted when the KV cache has no block for another.
 *   fcfs      waiting in arrival order (a preempted request goes back to the front); the newest running
 *             request is preempted;
 *   priority  waiting ordered by (priority, arrival), like V1's heap (a preempted request keeps its place by
 *             arrival); the running request with the largest (priority, arrival) is preempted.
 */
import type { Seq } from './sequence-kv.ts';

type Policy = 'fcfs' | 'priority';

/** Puts a request in the waiting queue (marked waiting); `front`: it was preempted (fcfs resumes it first). */
export function enqueue<S extends Seq>(waiting: S[], seq: S, front: boolean, policy: Policy): void {
  seq.state = 'waiting';
  if (policy === 'priority') {
    let lo = 0;
    let hi = waiting.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const w = waiting[mid] as S;
      if (
        w.req.priority < seq.req.priority ||
        (w.req.priority === seq.req.priority && w.arrival < seq.arrival)
      )
        lo = mid + 1;
      else hi = mid;
    }
    waiting.splice(lo, 0, seq);
  } else if (front) waiting.unshift(seq);
  else waiting.push(seq);
}

/** The running request to preempt (`running` is not empty). */
export function pickVictim<S extends Seq>(running: readonly S[], policy: Policy): S {
  if (policy === 'fcfs') return running[running.length - 1] as S;
  let victim = running[0] as S;
  for (const s of running)
    if (
      s.req.priority > victim.req.priority ||
      (s.req.priority === victim.req.priority && s.arrival > victim.arrival)
    )
      victim = s;
  return victim;
}
