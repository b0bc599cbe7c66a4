import { describe, expect, it } from 'vitest';
import { promptBlockHashes } from '../../../../controller/scheduler/block-hashes.ts';
import { seededRandom, zipfSampler } from '../../../../sim/cluster/random.ts';
import { arrivalTimesMs } from '../../../../sim/cluster/workloads/arrivals.ts';
import { documentQa } from '../../../../sim/cluster/workloads/documents.ts';
import { multiTurn } from '../../../../sim/cluster/workloads/multi-turn.ts';
import { noReuse } from '../../../../sim/cluster/workloads/no-reuse.ts';
import { promptTokenIds } from '../../../../sim/cluster/workloads/prompt-segments.ts';
import { sharedPrefix } from '../../../../sim/cluster/workloads/shared-prefix.ts';
import { parseTrace, TraceParseError } from '../../../../sim/cluster/workloads/trace.ts';

const shared = (over: Partial<Parameters<typeof sharedPrefix>[0]> = {}) =>
  sharedPrefix({
    tenants: 4,
    prefixTokens: 320,
    usersPerTenant: 3,
    questionTokens: 40,
    outputTokens: { min: 10, max: 20 },
    arrivals: { ratePerS: 20, durationS: 30 },
    seed: 7,
    ...over,
  });

const blocksOf = (r: { segments: Parameters<typeof promptTokenIds>[0] }) =>
  promptBlockHashes(promptTokenIds(r.segments));

describe('arrivals', () => {
  it('Poisson at the stated rate, deterministic per seed', () => {
    const a = arrivalTimesMs({ ratePerS: 50, durationS: 200 }, seededRandom(1));
    expect(a).toEqual(arrivalTimesMs({ ratePerS: 50, durationS: 200 }, seededRandom(1)));
    expect(a).not.toEqual(arrivalTimesMs({ ratePerS: 50, durationS: 200 }, seededRandom(2)));
    // 10,000 expected; a Poisson count's standard deviation is 100.
    expect(Math.abs(a.length - 10_000)).toBeLessThan(400);
    expect(a.every((t, i) => i === 0 || t >= (a[i - 1] as number))).toBe(true);
    expect((a[a.length - 1] as number) < 200_000).toBe(true);
  });

  it('ramps linearly: a quarter of the steady arrivals in the first half of the ramp... about', () => {
    const a = arrivalTimesMs({ ratePerS: 100, durationS: 100, rampS: 100 }, seededRandom(3));
    // Lambda(t) = r t^2 / 2R: 1,250 by 50 s, 5,000 by 100 s.
    const firstHalf = a.filter((t) => t < 50_000).length;
    expect(Math.abs(firstHalf - 1250)).toBeLessThan(150);
    expect(Math.abs(a.length - 5000)).toBeLessThan(300);
  });

  it('gamma gaps are bursty: same mean rate, coefficient of variation near the one asked', () => {
    const a = arrivalTimesMs({ ratePerS: 50, durationS: 400, burstCv: 3 }, seededRandom(4));
    const gaps = a.slice(1).map((t, i) => t - (a[i] as number));
    const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((x, y) => x + (y - mean) ** 2, 0) / gaps.length);
    expect(Math.abs(a.length - 20_000)).toBeLessThan(2_500);
    expect(sd / mean).toBeGreaterThan(2.3);
    expect(sd / mean).toBeLessThan(3.7);
  });

  it('refuses nonsense', () => {
    expect(() => arrivalTimesMs({ ratePerS: 0, durationS: 1 }, seededRandom(1))).toThrow(/ratePerS/);
  });
});

describe('shared prefix', () => {
  it('is deterministic per seed', () => {
    expect(shared()).toEqual(shared());
    expect(shared().requests).not.toEqual(shared({ seed: 8 }).requests);
  });

  it("a tenant's requests share exactly the system prompt's blocks; tenants share nothing", () => {
    const w = shared();
    const [a, b] = w.requests.filter((r) => r.tenant === 'tenant-1');
    const other = w.requests.find((r) => r.tenant === 'tenant-2');
    if (!a || !b || !other) throw new Error('workload too small');
    const ha = blocksOf(a);
    const hb = blocksOf(b);
    expect(a.promptTokens).toBe(360);
    expect(ha).toHaveLength(22);
    expect(hb.slice(0, 20)).toEqual(ha.slice(0, 20)); // 320 / 16 blocks of system prompt
    expect(hb[20]).not.toBe(ha[20]); // the questions differ
    expect(blocksOf(other)[0]).not.toBe(ha[0]);
    expect(w.requests.every((r) => r.outputTokens >= 10 && r.outputTokens <= 20)).toBe(true);
  });

  it('Zipf popularity concentrates traffic on few tenants', () => {
    const w = shared({ tenants: 50, zipf: 1.2, arrivals: { ratePerS: 100, durationS: 50 } });
    const counts = new Map<string, number>();
    for (const r of w.requests) counts.set(r.tenant, (counts.get(r.tenant) ?? 0) + 1);
    const top = Math.max(...counts.values());
    // p(rank 1) = 1 / H(50, 1.2) ~ 0.29; uniform would be 0.02.
    expect(top / w.requests.length).toBeGreaterThan(0.22);
    expect(w.name).toBe('zipf');
  });

  it('zipf sampler: rank 0 most likely, all ranks in range', () => {
    const z = zipfSampler(10, 1.2);
    const r = seededRandom(5);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 20_000; i++) counts[z(r)]++;
    expect(counts[0]).toBeGreaterThan(counts[1]);
    expect(counts[1]).toBeGreaterThan(counts[9]);
  });
});

describe('other workloads', () => {
  it('long-document QA: questions on one document share the whole document', () => {
    const w = documentQa({
      documents: 2,
      documentTokens: 3200,
      questionTokens: 32,
      outputTokens: { min: 5, max: 5 },
      arrivals: { ratePerS: 10, durationS: 5 },
      seed: 1,
    });
    const [a, b] = w.requests.filter((r) => r.tenant === 'doc-0');
    if (!a || !b) throw new Error('workload too small');
    expect(blocksOf(a).slice(0, 200)).toEqual(blocksOf(b).slice(0, 200));
    expect(w.name).toBe('long_document_qa');
  });

  it('no reuse: no two prompts share a first block', () => {
    const w = noReuse({
      promptTokens: { min: 32, max: 64 },
      outputTokens: { min: 1, max: 4 },
      arrivals: { ratePerS: 50, durationS: 4 },
      seed: 3,
    });
    const firsts = new Set(w.requests.map((r) => blocksOf(r)[0]));
    expect(firsts.size).toBe(w.requests.length);
  });

  it("multi-turn: each turn's prompt is the previous prompt plus its answer plus a new message", () => {
    const w = multiTurn({
      conversations: { ratePerS: 2, durationS: 60 },
      systemTokens: 64,
      turns: { min: 3, max: 3 },
      userTokens: { min: 20, max: 40 },
      outputTokens: { min: 30, max: 50 },
      thinkS: 2,
      seed: 9,
    });
    const turns = w.requests.filter((r) => r.tenant === 'conversation-0');
    expect(turns.length).toBe(3);
    const [t0, t1] = turns as [(typeof turns)[0], (typeof turns)[0]];
    expect(t1.arrivalMs).toBeGreaterThan(t0.arrivalMs);
    const p0 = promptTokenIds(t0.segments);
    const p1 = promptTokenIds(t1.segments);
    expect(p1.slice(0, p0.length)).toEqual(p0);
    expect(t1.segments[t0.segments.length]).toEqual({ key: t0.outputKey, tokens: t0.outputTokens });
    expect(w.requests.every((r, i) => i === 0 || r.arrivalMs >= (w.requests[i - 1]?.arrivalMs ?? 0))).toBe(
      true,
    );
    expect(w.requests.map((r) => r.id)).toEqual(w.requests.map((_, i) => i));
  });
});

describe('Mooncake trace replay', () => {
  const trace = [
    '{"timestamp": 0, "input_length": 1100, "output_length": 50, "hash_ids": [0, 1, 2]}',
    '{"timestamp": 500, "input_length": 700, "output_length": 20, "hash_ids": [0, 3]}',
    '',
    '{"timestamp": 900, "input_length": 100, "output_length": 0, "hash_ids": [4]}',
  ].join('\n');

  it('expands 512-token hash ids: equal leading ids share exactly those tokens', () => {
    const w = parseTrace(trace);
    expect(w.requests.map((r) => [r.arrivalMs, r.promptTokens, r.outputTokens])).toEqual([
      [0, 1100, 50],
      [500, 700, 20],
      [900, 100, 1],
    ]);
    const [a, b] = w.requests.map(blocksOf) as [number[], number[]];
    expect(a).toHaveLength(68);
    expect(b.slice(0, 32)).toEqual(a.slice(0, 32)); // hash id 0: 512 tokens = 32 blocks
    expect(b[32]).not.toBe(a[32]);
    expect(w.durationMs).toBe(900);
  });

  it('says which line is wrong and why', () => {
    expect(() => parseTrace('{"timestamp": 0, "input_length": 5, "output_length": 1}\nnope')).toThrow(
      /trace line 2: not JSON/,
    );
    expect(() => parseTrace('{"timestamp": -1, "input_length": 5, "output_length": 1}')).toThrow(
      /trace line 1: timestamp must be a number >= 0/,
    );
    expect(() =>
      parseTrace('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}'),
    ).toThrow(TraceParseError);
    expect(() =>
      parseTrace(
        '{"timestamp": 9, "input_length": 5, "output_length": 1}\n{"timestamp": 3, "input_length": 5, "output_length": 1}',
      ),
    ).toThrow(/line 2: timestamp 3 is before/);
    expect(() => parseTrace('\n\n')).toThrow(/no requests/);
  });
});
