/**
 * A generation that outlives the controller replica serving it: the durable request path's promise, kept on the
 * client's side too. The request lives in Redis, not in a controller, so when the stream breaks (the replica
 * died: UNAVAILABLE, or the call ended without Finished; a replica that hangs fails its calls with UNAVAILABLE
 * too, when CorralClient's keepalive pings go unanswered) the client carries on from another replica:
 *   - nothing arrived yet: Generate again with the same request id (it attaches, it never runs twice);
 *   - Started arrived: Resume after the tokens already received (no gap, no duplicate).
 * The caller sees one stream. Only those two retries happen: both are safe by construction.
 *
 *   const replicas = addresses.map((address) => new CorralClient({ address, apiKey, maxAttempts: 1 }));
 *   for await (const e of generateDurably(replicas, { model, prompt }, { requestId })) ...
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import {
  type CallOptions,
  type CorralClient,
  type GenerateParams,
  type GenerationEvent,
  sleep,
} from './corral-client.ts';
import { CorralClientError } from './errors.ts';

export interface DurableCallOptions extends CallOptions {
  /** How long to keep trying other replicas after a break before giving up with the last error (default 30 s). */
  failoverMs?: number;
  /** First pause between two replicas' attempts; doubles up to 2 s (default 100 ms). */
  retryBaseMs?: number;
  /** Told of every switch to another replica (for logs and audits). */
  onFailover?: (f: Failover) => void;
}

export interface Failover {
  requestId: string;
  /** Index in the replicas array of the replica tried next. */
  to: number;
  /** Resume: continues after this many tokens. Generate: nothing had arrived. */
  how: 'resume' | 'generate';
  afterTokenIndex: number;
  error: CorralClientError;
}

/** The broken stream's status: a replica that went away, not an answer about the request. */
const SWITCH_ON: ReadonlySet<number> = new Set([status.UNAVAILABLE]);

export async function* generateDurably(
  replicas: readonly CorralClient[],
  params: GenerateParams,
  call: DurableCallOptions = {},
): AsyncGenerator<GenerationEvent> {
  if (replicas.length === 0) throw new Error('generateDurably needs at least one replica');
  const requestId = call.requestId ?? randomUUID();
  const deadline = call.timeoutMs === undefined ? undefined : Date.now() + call.timeoutMs;
  const failoverMs = call.failoverMs ?? 30_000;
  const retryBaseMs = call.retryBaseMs ?? 100;
  let started = false;
  let received = 0;
  let at = 0;
  let brokenSince: number | undefined;
  let pauses = 0;
  for (;;) {
    const replica = replicas[at % replicas.length] as CorralClient;
    const remaining = deadline === undefined ? {} : { timeoutMs: Math.max(1, deadline - Date.now()) };
    const signal = call.signal ? { signal: call.signal } : {};
    const events = started
      ? replica.resume(
          { model: params.model, requestId, afterTokenIndex: received },
          { ...remaining, ...signal },
        )
      : replica.generate(params, { requestId, ...remaining, ...signal });
    let error: CorralClientError;
    try {
      for await (const e of events) {
        // Resume after 0 tokens replays Started, which the caller already has.
        if (e.type === 'started' && started) continue;
        if (e.type === 'started') started = true;
        if (e.type === 'delta') received = e.index + e.tokenCount;
        brokenSince = undefined;
        pauses = 0;
        yield e;
        if (e.type === 'finished') return;
      }
      error = new CorralClientError(status.UNAVAILABLE, 'the stream ended without a finished event');
    } catch (e) {
      error = CorralClientError.from(e);
      if (!SWITCH_ON.has(error.code) || call.signal?.aborted) throw error;
    }
    const now = Date.now();
    brokenSince ??= now;
    if (now - brokenSince >= failoverMs || (deadline !== undefined && now >= deadline)) throw error;
    at += 1;
    call.onFailover?.({
      requestId,
      to: at % replicas.length,
      how: started ? 'resume' : 'generate',
      afterTokenIndex: received,
      error,
    });
    // Every replica tried once without progress: wait before the next round (one may be restarting).
    if (at % replicas.length === 0 || replicas.length === 1) {
      await sleep(Math.min(2000, retryBaseMs * 2 ** pauses), call.signal);
      pauses += 1;
    }
  }
}
