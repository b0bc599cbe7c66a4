/**
 * How long the group reconciler goes without a leader when the leading controller replica dies, with the
 * production lease (3 s, renewed and contested every 1 s) on a real redis-server. Two electors per round, as two
 * replicas run them: the leader "crashes" (stops renewing, never releases: what SIGKILL leaves behind) and the
 * time until the other leads is measured. Baseline, measured in the same run: a graceful hand-over (the leader
 * releases its lease on SIGTERM), bounded by the follower's next attempt.
 *   npm run bench:leader-failover -- [--rounds 8] [--json]
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { systemClock } from '../common/clock.ts';
import { silentLogger } from '../common/log.ts';
import { LeaderElector } from '../controller/leader/leader-elector.ts';
import { DEFAULT_LEASE_POLICY } from '../controller/leader/lease-decision.ts';
import { type LeaseStore, RedisLeaseStore } from '../controller/leader/redis-lease.ts';
import { startRedis } from '../test/helpers/redis.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '8' }, json: { type: 'boolean', default: false } },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer`);

const server = await startRedis();
const redis = new Redis(server.url);
const policy = DEFAULT_LEASE_POLICY;

/** One round: a leads, b follows; a leaves (crash: no release) and we time until b leads. */
async function round(prefix: string, crash: boolean): Promise<number> {
  const store = new RedisLeaseStore(redis, prefix);
  // a crashed process releases nothing: its store forgets the release
  const crashed: LeaseStore = {
    acquire: (id, ms, seen) => store.acquire(id, ms, seen),
    renew: (id, e, ms) => store.renew(id, e, ms),
    release: async () => undefined,
    holder: () => store.holder(),
  };
  const elector = (id: string, s: LeaseStore) =>
    new LeaderElector({ id, store: s, policy, clock: systemClock, log: silentLogger });
  const a = elector('a', crash ? crashed : store);
  const b = elector('b', store);
  a.start();
  await waitFor(() => a.epoch() !== undefined);
  b.start();
  // the leader dies at a random point of its renewal cycle, as a real one would
  await sleep(Math.random() * policy.renewMs + policy.renewMs);
  const leftAt = performance.now();
  await a.stop();
  await waitFor(() => b.epoch() !== undefined);
  const ms = performance.now() - leftAt;
  await b.stop();
  return ms;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(probe: () => boolean): Promise<void> {
  while (!probe()) await sleep(5);
}

function stats(xs: number[]) {
  const s = [...xs].sort((x, y) => x - y);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50_ms: Math.round(at(0.5)), max_ms: Math.round(s.at(-1) ?? 0), min_ms: Math.round(s[0] ?? 0) };
}

try {
  const crash: number[] = [];
  const graceful: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (!values.json) process.stderr.write(`round ${i + 1}/${rounds}\n`);
    crash.push(await round(`bench:${i}:crash`, true));
    graceful.push(await round(`bench:${i}:graceful`, false));
  }
  const result = {
    lease_ms: policy.leaseMs,
    renew_ms: policy.renewMs,
    rounds,
    crash: stats(crash),
    graceful_baseline: stats(graceful),
    crash_over_graceful_p50: Number((stats(crash).p50_ms / Math.max(1, stats(graceful).p50_ms)).toFixed(1)),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      [
        `leader takeover on Redis (lease ${policy.leaseMs} ms, renew/attempt every ${policy.renewMs} ms), ${rounds} rounds`,
        `  leader crashed (no release)   p50 ${result.crash.p50_ms} ms   max ${result.crash.max_ms} ms`,
        `  leader stopped (releases)     p50 ${result.graceful_baseline.p50_ms} ms   max ${result.graceful_baseline.max_ms} ms   (baseline)`,
        `  a crash costs ${result.crash_over_graceful_p50}x the graceful hand-over: the lease must expire first`,
        '',
      ].join('\n'),
    );
  }
} finally {
  redis.disconnect();
  await server.stop();
}
