/**
 * What admission adds to a request, on a real redis-server: identify (hash the key, look up the tenant; no
 * I/O) and charge (one atomic Lua script over the tenant's two token buckets). Baseline, measured in the same
 * run on the same connection: a Redis PING round trip, the least any Redis-backed check can cost. Sequential
 * (latency) and with `--concurrency` charges in flight (throughput, as many clients at once).
 *   npm run bench:admission -- [--requests 5000] [--concurrency 64] [--json]
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { systemClock } from '../common/clock.ts';
import { tenantAdmission } from '../controller/admission/tenant-admission.ts';
import { RateLimiter } from '../controller/tenancy/rate-limiter.ts';
import { sha256Hex, TenantDirectory } from '../controller/tenancy/tenant-directory.ts';
import { startRedis } from '../test/helpers/redis.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
});
const n = Number(values.requests);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(n) || n < 100) throw new Error('--requests must be an integer >= 100');
if (!Number.isInteger(concurrency) || concurrency < 1)
  throw new Error('--concurrency must be a positive integer');

const KEY = 'sk-bench-0123456789abcdef0123456789abcdef';
// Budgets large enough never to refuse: the bench measures the check, not refusals.
const directory = TenantDirectory.fromOptions({
  tenants: [
    {
      id: 'bench',
      requests: { perSecond: 1e9, burst: 1e9 },
      tokens: { perSecond: 1e12, burst: 1e12 },
      keySha256: [sha256Hex(KEY)],
    },
  ],
});

const server = await startRedis();
const redis = new Redis(server.url);
const admission = tenantAdmission(
  directory,
  new RateLimiter({ redis, clock: systemClock, prefix: 'bench-admission' }),
);

/** Per-call latencies (ms) of `op` run n times one after another. */
async function sequential(op: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op();
    out.push(performance.now() - t);
  }
  return out;
}

/** Calls per second of `op` with `concurrency` calls in flight. */
async function throughput(op: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) await op();
    }),
  );
  return n / ((performance.now() - t) / 1000);
}

function quantiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50_ms: round3(at(0.5)), p99_ms: round3(at(0.99)) };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

try {
  const who = admission.identify(KEY, undefined);
  // Warm up: the script is loaded (EVALSHA after the first EVAL), the JIT has seen both paths.
  for (let i = 0; i < 200; i++) {
    await redis.ping();
    await admission.charge(who, 100);
  }
  const identifyStart = performance.now();
  for (let i = 0; i < n; i++) admission.identify(KEY, undefined);
  const identifyUs = ((performance.now() - identifyStart) * 1000) / n;

  const ping = quantiles(await sequential(() => redis.ping()));
  const charge = quantiles(await sequential(() => admission.charge(who, 100)));
  const pingRate = await throughput(() => redis.ping());
  const chargeRate = await throughput(() => admission.charge(who, 100));
  const result = {
    requests: n,
    concurrency,
    identify_us: round3(identifyUs),
    charge,
    ping_baseline: ping,
    charge_over_ping_p50: Number((charge.p50_ms / Math.max(0.001, ping.p50_ms)).toFixed(2)),
    charges_per_s: Math.round(chargeRate),
    pings_per_s_baseline: Math.round(pingRate),
    charge_over_ping_rate: Number((chargeRate / pingRate).toFixed(2)),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      [
        `admission on Redis, ${n} calls (sequential for latency, ${concurrency} in flight for rate)`,
        `  identify (SHA-256 + lookup)    ${result.identify_us} us per call, no I/O`,
        `  charge (2 buckets, 1 script)   p50 ${charge.p50_ms} ms   p99 ${charge.p99_ms} ms   ${result.charges_per_s}/s`,
        `  PING round trip (baseline)     p50 ${ping.p50_ms} ms   p99 ${ping.p99_ms} ms   ${result.pings_per_s_baseline}/s`,
        `  charge costs ${result.charge_over_ping_p50}x a PING at p50; ${result.charge_over_ping_rate}x its rate`,
        '',
      ].join('\n'),
    );
  }
} finally {
  redis.disconnect();
  await server.stop();
}
