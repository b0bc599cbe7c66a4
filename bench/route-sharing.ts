/**
 * bench:route-sharing — what sharing routing decisions between controller replicas (controller/dispatch/
 * route-feed.ts) costs the dispatch path, and how much Redis memory the shared stream takes.
 *
 *   per decision   the dispatcher's pick through PrefixRouter for an 8,192-token prompt over 8 groups, alone
 *                  (the baseline, one replica) and with its decision shared (kept hashes, encoded, XADD handed
 *                  to ioredis, not awaited: what the dispatch path pays before the dispatch call); for
 *                  comparison, one awaited XADD (the round trip the path would pay if it waited for Redis)
 *   memory         MEMORY USAGE of the stream once it holds its cap of decisions (8k-token prompts)
 *
 * Usage: npm run bench:route-sharing [-- --json]. Starts its own redis-server on loopback.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { promptBlockHashes } from '../common/block-hash.ts';
import { silentLogger } from '../common/log.ts';
import { RouteFeed } from '../controller/dispatch/route-feed.ts';
import type { GroupView } from '../controller/scheduler/pick.ts';
import { PrefixRouter } from '../controller/scheduler/prefix-router.ts';
import { seededRandom } from '../sim/cluster/random.ts';
import { quantile } from '../sim/cluster/summary.ts';
import { startRedis } from '../test/helpers/redis.ts';

const { values: args } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
const CALLS = 4000;
const MAX_ENTRIES = 2048;

const random = seededRandom(7);
const groups: GroupView[] = Array.from({ length: 8 }, (_, i) => ({
  id: `g${i}`,
  deployment: 'm',
  state: 'ready',
  outstanding: 0,
}));
// 64 tenants' 8,000-token prefixes and a 192-token question each: 512 blocks per prompt.
const prefixes = Array.from({ length: 64 }, (_, t) =>
  Array.from({ length: 8000 }, (_, i) => (t * 7919 + i * 31) % 120_000),
);
const prompts = Array.from({ length: CALLS }, (_, i) => {
  const ids = prefixes[Math.floor(random() * prefixes.length)] as number[];
  const question = Array.from({ length: 192 }, (_, k) => (i * 131 + k * 17) % 120_000);
  return promptBlockHashes(ids.concat(question));
});

function timePicks(router: PrefixRouter): Float64Array {
  const out = new Float64Array(CALLS);
  for (let i = 0; i < CALLS; i++) {
    const blocks = prompts[i] as number[];
    const t = performance.now();
    router.pick(groups, { deployment: 'm', promptBlocks: blocks }, random, `r${i}`);
    out[i] = (performance.now() - t) * 1000;
    router.firstToken(`r${i}`);
  }
  return out.sort();
}

const server = await startRedis();
const redis = new Redis(server.url, { maxRetriesPerRequest: null });
try {
  const key = 'bench:{m}:routes';
  const feed = RouteFeed.open({
    redis,
    key,
    owner: 'bench',
    onDecision: () => {},
    log: silentLogger,
    maxEntries: MAX_ENTRIES,
  });
  const alone = timePicks(new PrefixRouter({ capacityBlocks: 12_222 }));
  const shared = timePicks(new PrefixRouter({ capacityBlocks: 12_222, onDecision: (d) => feed.publish(d) }));
  await redis.ping(); // every XADD issued above has been answered
  const roundTrips = new Float64Array(500);
  for (let i = 0; i < roundTrips.length; i++) {
    const t = performance.now();
    await redis.xadd(`${key}:rt`, 'MAXLEN', '~', 10, '*', 'o', 'x', 'd', 'g0 1 0 1');
    roundTrips[i] = (performance.now() - t) * 1000;
  }
  roundTrips.sort();
  const entries = await redis.xlen(key);
  const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
  await feed.close();
  const us = (x: number) => Math.round(x * 10) / 10;
  const out = {
    pick_alone_us: { p50: us(quantile(alone, 0.5)), p99: us(quantile(alone, 0.99)) },
    pick_and_share_us: { p50: us(quantile(shared, 0.5)), p99: us(quantile(shared, 0.99)) },
    awaited_xadd_round_trip_us: { p50: us(quantile(roundTrips, 0.5)), p99: us(quantile(roundTrips, 0.99)) },
    stream_entries: entries,
    stream_bytes: bytes,
    bytes_per_decision: Math.round(bytes / Math.max(1, entries)),
  };
  if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else
    process.stdout.write(
      [
        `per decision, 8,192-token prompt, 8 groups (${CALLS} decisions)   p50 us   p99 us`,
        `  pick (one replica, baseline)              ${String(out.pick_alone_us.p50).padStart(8)} ${String(out.pick_alone_us.p99).padStart(8)}`,
        `  pick + share (XADD not awaited)           ${String(out.pick_and_share_us.p50).padStart(8)} ${String(out.pick_and_share_us.p99).padStart(8)}`,
        `  an awaited XADD round trip (for scale)    ${String(out.awaited_xadd_round_trip_us.p50).padStart(8)} ${String(out.awaited_xadd_round_trip_us.p99).padStart(8)}`,
        `stream: ${entries} decisions kept (cap ${MAX_ENTRIES}, approximate), ${(bytes / 1e6).toFixed(2)} MB, ${out.bytes_per_decision} B per decision`,
        '',
      ].join('\n'),
    );
} finally {
  redis.disconnect();
  await server.stop();
}
