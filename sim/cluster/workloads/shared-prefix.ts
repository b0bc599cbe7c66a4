/**
 * Shared-prefix traffic (llm-d's benchmark shape): T tenants each with a P-token system prompt, U users per
 * tenant, every request = the tenant's system prompt + a fresh Q-token question from one of its users. Tenant
 * popularity is uniform, or Zipf(s) (a few tenants carry most traffic: the hot-spot test of the imbalance
 * guard). Long-document QA is the same shape with documents for tenants (documents.ts).
 */
import { fork, type Random, seededRandom, uniformInt, zipfSampler } from '../random.ts';
import type { SimRequest, Workload } from '../workload.ts';
import { type ArrivalSpec, arrivalTimesMs } from './arrivals.ts';
import { contentKey } from './prompt-segments.ts';

export interface SharedPrefixSpec {
  name?: string;
  tenants: number;
  prefixTokens: number;
  usersPerTenant: number;
  questionTokens: number;
  /** Output length, uniform in [min, max]. */
  outputTokens: { min: number; max: number };
  arrivals: ArrivalSpec;
  /** Zipf exponent of tenant popularity; undefined = uniform. */
  zipf?: number;
  warmupS?: number;
  seed: number;
  /** Label of the prefix owner in tenant names (`tenant-3`, `doc-3`). */
  ownerLabel?: string;
}

export function sharedPrefix(spec: SharedPrefixSpec): Workload {
  const random = seededRandom(spec.seed);
  const times = arrivalTimesMs(spec.arrivals, fork(random));
  const pickTenant = tenantChooser(spec, fork(random));
  const draws = fork(random);
  const label = spec.ownerLabel ?? 'tenant';
  const requests = times.map((arrivalMs, id): SimRequest => {
    const t = pickTenant();
    const user = uniformInt(draws, 0, spec.usersPerTenant - 1);
    return {
      id,
      arrivalMs,
      tenant: `${label}-${t}`,
      segments: [
        { key: contentKey(1, spec.seed, t), tokens: spec.prefixTokens },
        { key: contentKey(2, spec.seed, t, user, id), tokens: spec.questionTokens },
      ],
      promptTokens: spec.prefixTokens + spec.questionTokens,
      outputTokens: uniformInt(draws, spec.outputTokens.min, spec.outputTokens.max),
      outputKey: contentKey(3, spec.seed, id),
    };
  });
  return {
    name: spec.name ?? (spec.zipf === undefined ? 'shared_prefix' : 'zipf'),
    requests,
    durationMs: spec.arrivals.durationS * 1000,
    warmupMs: (spec.warmupS ?? spec.arrivals.rampS ?? 0) * 1000,
  };
}

function tenantChooser(spec: SharedPrefixSpec, random: Random): () => number {
  if (spec.zipf === undefined) return () => uniformInt(random, 0, spec.tenants - 1);
  const zipf = zipfSampler(spec.tenants, spec.zipf);
  // Ranks are shuffled onto tenant numbers so the hottest tenant is not always tenant-0.
  const order = Array.from({ length: spec.tenants }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = uniformInt(random, 0, i);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return () => order[zipf(random)] as number;
}
