/**
 * The chaos run's clients: streamed requests arriving as a Poisson process (bounded in flight), each with its
 * own request id, prompt, max_tokens and seed, each followed to its end by generateDurably (a broken stream
 * continues on the other controller) and checked by a StreamAudit plus the undisturbed run's tokens.
 *
 * What each request's record keeps for the report: the tokens by index (to compare with reference-tokens.ts),
 * when each delta arrived (how long a stream stalled when a fault hit it) and when it ended.
 */
import { type CorralClient, sleep } from '../../client/corral-client.ts';
import { generateDurably } from '../../client/durable-generate.ts';
import { CorralClientError } from '../../client/errors.ts';
import { exponential, type Random } from '../../sim/cluster/random.ts';
import type { ChaosRequest, Tracked } from './chaos-metrics.ts';
import { StreamAudit } from './stream-audit.ts';

export interface LoadOptions {
  model: string;
  /** One client per controller replica; request i starts on replica i mod n. */
  replicas: readonly CorralClient[];
  requests: readonly ChaosRequest[];
  concurrency: number;
  rate: number;
  random: Random;
  /** ms since the run's start. */
  now: () => number;
  /**
   * Called after each submission with how many have been submitted; arrivals wait for a returned promise (the
   * run holds them until a scheduled fault is in, so each fault finds its share of the load in flight).
   */
  onSubmitted?: (submitted: number) => Promise<void> | undefined;
  /** Called when a request ends (completed, failed, or abandoned). */
  onEnded?: () => void;
  /** Aborts what is still open: those requests are lost (neither finished nor failed). */
  abandon: AbortSignal;
}

const TOPICS = ['the Rocky Mountains', 'tide pools', 'the history of bridges', 'sourdough', 'comets', 'jazz'];

export function chaosRequests(count: number, random: Random, runSeed: number): ChaosRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `chaos-${runSeed}-${i}`,
    prompt: `Request ${i}: tell me about ${TOPICS[i % TOPICS.length]}.`,
    maxTokens: 40 + Math.floor(random() * 60),
    seed: runSeed * 100_003 + i,
  }));
}

/** Runs every request; resolves when each has ended or been abandoned. */
export async function runLoad(o: LoadOptions): Promise<Tracked[]> {
  const tracked: Tracked[] = [];
  const running = new Set<Promise<void>>();
  for (const [i, request] of o.requests.entries()) {
    await sleep(exponential(o.random, o.rate) * 1000, o.abandon);
    while (running.size >= o.concurrency && !o.abandon.aborted) await Promise.race(running);
    if (o.abandon.aborted) break;
    const t = track(request, o.now());
    tracked.push(t);
    const order = [...o.replicas.slice(i % o.replicas.length), ...o.replicas.slice(0, i % o.replicas.length)];
    const p = follow(t, order, o).finally(() => running.delete(p));
    running.add(p);
    await o.onSubmitted?.(tracked.length);
  }
  await Promise.all(running);
  return tracked;
}

function track(request: ChaosRequest, now: number): Tracked {
  return {
    request,
    audit: new StreamAudit(request.id),
    promptIds: undefined,
    tokens: [],
    deltaTimes: [],
    startedAt: now,
    endedAt: undefined,
    retries: 0,
  };
}

async function follow(t: Tracked, replicas: readonly CorralClient[], o: LoadOptions): Promise<void> {
  const { request: r, audit } = t;
  const params = {
    model: o.model,
    prompt: r.prompt,
    maxTokens: r.maxTokens,
    seed: r.seed,
    ignoreEos: true,
    returnTokenIds: true,
  };
  try {
    const events = generateDurably(replicas, params, {
      requestId: r.id,
      signal: o.abandon,
      onFailover: (f) => {
        if (f.how === 'resume') audit.resumed();
        else t.retries += 1;
      },
    });
    for await (const e of events) {
      if (e.type === 'started') t.promptIds = e.promptTokenIds;
      if (e.type === 'delta') {
        audit.delta(e.index, e.tokenCount);
        e.tokenIds.forEach((id, k) => {
          t.tokens[e.index + k] = id;
        });
        t.deltaTimes.push(o.now());
      }
      if (e.type === 'finished') audit.finished(e.usage.completionTokens);
    }
  } catch (e) {
    // Abandoned by the run: lost, which is what its audit says when it neither finished nor failed.
    if (!o.abandon.aborted) audit.failed(errorKind(CorralClientError.from(e), r.id));
  } finally {
    t.endedAt = o.now();
    o.onEnded?.();
  }
}

/** The error without the request's own id, so the report counts errors by kind. */
function errorKind(e: CorralClientError, requestId: string): string {
  return `${e.codeName}: ${e.details.replaceAll(requestId, '<id>')}`;
}
