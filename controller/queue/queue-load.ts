/**
 * A queue's load as shedding and the autoscaler read it: requests waiting per class, leases held, and the drain
 * rate. The drain rate counts only the time during which requests waited (take to take, when the first left a
 * backlog; the TAKE script keeps B:bdisp / B:bms per second, keys.ts): while arrivals set the pace, the dispatch
 * rate says how busy the queue was, not how fast a backlog would drain (a ramp-up or a quiet spell would make
 * every wait look long, or unknown). With less than MIN_DRAIN_MS of such time in the window, the last rate
 * measured (kept an hour); never measured: 0 requests in 0 ms (unknown). The drain's round (the gap a waiting
 * request sits in, shed-policy.ts) is sum(gap^2) / sum(gap) over the same takes.
 */
import type { Redis } from 'ioredis';
import { PRIORITY_CLASSES, type PriorityClass } from './priority-class.ts';
import type { QueueLoad } from './shed-policy.ts';

/** How long the last measured drain rate stands in for an unmeasured one (after a quiet spell). */
const DRAIN_MEMORY_MS = 3_600_000;
/** Less backlogged time than this in the window is too little to measure a drain rate from. */
const MIN_DRAIN_MS = 250;

export async function readQueueLoad(
  redis: Redis,
  base: string,
  now: number,
  windowSeconds: number,
): Promise<QueueLoad & { leased: number }> {
  const second = Math.floor(now / 1000);
  const p = redis.pipeline();
  for (const c of PRIORITY_CLASSES) p.zcard(`${base}:ready:${c}`);
  p.zcard(`${base}:leases`);
  for (let s = second - windowSeconds + 1; s <= second; s++) {
    p.get(`${base}:bdisp:${s}`);
    p.get(`${base}:bms:${s}`);
    p.get(`${base}:bms2:${s}`);
  }
  p.get(`${base}:drain`);
  const res = (await p.exec()) ?? [];
  const values = res.map(([e, v]) => {
    if (e) throw e;
    return v as string | number | null;
  });
  const counts = values.slice(0, 4).map((v) => Number(v ?? 0));
  let dispatched = 0;
  let windowMs = 0;
  let squaredMs = 0;
  for (let i = 0; i < windowSeconds; i++) {
    dispatched += Number(values[4 + 3 * i] ?? 0);
    windowMs += Number(values[5 + 3 * i] ?? 0);
    squaredMs += Number(values[6 + 3 * i] ?? 0);
  }
  let roundMs = windowMs > 0 ? squaredMs / windowMs : 0;
  if (windowMs >= MIN_DRAIN_MS) {
    // A hint for after a quiet spell; a failed write is written again by the next read.
    const drain = `${dispatched}:${windowMs}:${Math.round(roundMs)}`;
    void redis.set(`${base}:drain`, drain, 'PX', DRAIN_MEMORY_MS).catch(() => {});
  } else {
    const [n, ms, round] = String(values[4 + 3 * windowSeconds] ?? '0:0:0')
      .split(':')
      .map(Number);
    dispatched = n ?? 0;
    windowMs = ms ?? 0;
    roundMs = round ?? 0;
  }
  return {
    waiting: { interactive: counts[0] ?? 0, standard: counts[1] ?? 0, batch: counts[2] ?? 0 },
    leased: counts[3] ?? 0,
    dispatchedInWindow: dispatched,
    windowMs,
    roundMs: Number.isFinite(roundMs) ? roundMs : 0,
  };
}

/**
 * The load as shedding reads it on every submit: read at most every maxAgeMs (0: on every submit), one read
 * shared by every submit that finds it stale meanwhile (under load hundreds do at once, and a read each, a
 * pipeline of 35 commands, cost the controller more than the submits themselves), and counting what this
 * replica queued since, or a burst would be admitted on a stale, short queue.
 * A submit is decided and, if admitted, counted as waiting in one synchronous step (decide), until its SUBMIT
 * answers (settle): submits that arrive together (a burst, or what piled up during an event-loop stall) see
 * each other, rather than all being admitted on one count. One that its SUBMIT also counts in a read made
 * meanwhile is counted twice until the next read: shedding errs towards refusing.
 */
export class SheddingLoad {
  private cached: { at: number; load: QueueLoad } | undefined;
  private reading: Promise<QueueLoad> | undefined;
  /** Submits admitted here whose SUBMIT has not answered yet. */
  private readonly admitting: Record<PriorityClass, number> = { interactive: 0, standard: 0, batch: 0 };

  constructor(
    private readonly read: () => Promise<QueueLoad>,
    private readonly maxAgeMs: number,
  ) {}

  /** Decides a submit of `cls` by `policy` on the load as it stands; an admission counts until settle(). */
  async decide<D extends { t: string }>(
    now: number,
    cls: PriorityClass,
    policy: (load: QueueLoad) => D,
  ): Promise<D> {
    const read = await this.get(now);
    // Submits that settled while this one waited for the read changed the cached load since.
    const current = this.cached?.load ?? read;
    const d = policy({ ...current, waiting: plus(current.waiting, this.admitting) });
    if (d.t === 'admit') this.admitting[cls] += 1;
    return d;
  }

  /** The SUBMIT of a request admitted by decide() answered (or failed); `queued`: it waits in the queue now. */
  settle(cls: PriorityClass, queued: boolean): void {
    this.admitting[cls] -= 1;
    if (queued && this.cached) {
      const w = this.cached.load.waiting;
      this.cached.load = { ...this.cached.load, waiting: { ...w, [cls]: w[cls] + 1 } };
    }
  }

  private get(now: number): Promise<QueueLoad> {
    if (this.maxAgeMs <= 0) return this.read();
    if (this.cached && now - this.cached.at < this.maxAgeMs) return Promise.resolve(this.cached.load);
    this.reading ??= this.read()
      .then((load) => {
        this.cached = { at: now, load };
        return load;
      })
      .finally(() => {
        this.reading = undefined;
      });
    return this.reading;
  }
}

function plus(a: Readonly<Record<PriorityClass, number>>, b: Readonly<Record<PriorityClass, number>>) {
  return {
    interactive: a.interactive + b.interactive,
    standard: a.standard + b.standard,
    batch: a.batch + b.batch,
  };
}
