/**
 * One deployment's durable request queue on Redis: what the gateway submits to and the dispatcher takes from.
 *
 * Why not BullMQ's Queue/Worker, although BullMQ is the house style: open-source BullMQ orders a queue by one
 * integer priority fixed when a job is added (at most 2^21) and hands out one job per round trip to whichever
 * worker asks. corral needs an order that changes with what was handed out (weighted fair sharing between
 * tenants, reserved shares between classes, fair-policy.ts), a batched take of exactly the n requests the
 * dispatcher has room for, deadlines checked at hand-out, and leases of a few seconds owned by a controller
 * replica (BullMQ's lock is per job and its stall check runs every 30 s by default). Per-tenant fairness is a
 * BullMQ Pro feature (groups). So the queue follows BullMQ's design (all state in Redis, every transition one
 * atomic Lua script, tested on a real Redis, keys under one prefix) with its own scripts (queue-scripts.ts);
 * the key layout is in keys.ts.
 *
 * Durability: every accepted request is in Redis before submit() resolves. With appendfsync everysec (the
 * default) a Redis crash can lose the last second of writes; `always` loses nothing and costs an fsync per
 * write (see test/helpers/redis.ts and the local cluster's Redis options).
 *
 * Leases: take() marks each request dispatched to `owner` until now + leaseMs. The owner renews all its
 * requests every leaseMs/3 (renew()). When a replica dies its leases run out and the next take() or
 * maintain() by any replica puts those requests back at the front of their class, to be continued from their
 * stream log (stream-log.ts); after maxAttempts hand-outs a request fails with a clear error instead.
 * Lease times come from each replica's injected Clock (tests drive them with a ManualClock), so replicas'
 * clocks must agree to well under leaseMs (NTP does: milliseconds); a replica whose clock runs ahead by s
 * reclaims others' leases s early, and the stream log's idempotent appends keep even that from duplicating.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import { ValidationError } from '../../common/errors.ts';
import { QueueFullError, RequestExpiredError, RequestIdConflictError } from './errors.ts';
import {
  type ClassShares,
  CREDIT_UNIT,
  DEFAULT_RESERVES,
  reserveUnits,
  tagIncrement,
  validateReserves,
} from './fair-policy.ts';
import { queueBase, requestKey } from './keys.ts';
import { PRIORITY_CLASSES, type PriorityClass } from './priority-class.ts';
import { readQueueLoad, SheddingLoad } from './queue-load.ts';
import { CANCEL, MAINTAIN, RENEW, SETTLE, SUBMIT, TAKE } from './queue-scripts.ts';
import { decideShed, type QueueLoad, type ShedOptions } from './shed-policy.ts';

export type RequestState = 'queued' | 'dispatched' | 'finished' | 'failed' | 'cancelled' | 'expired';

export interface RequestQueueOptions {
  redis: Redis;
  clock: Clock;
  deployment: string;
  /** Key prefix. Default 'corral'. Tests give each test its own. */
  prefix?: string;
  /** How long a dispatched request stays with its owner without a renewal. Default 5000 ms. */
  leaseMs?: number;
  /** Hand-outs before a request fails instead of being handed out again. Default 3. */
  maxAttempts?: number;
  /** How long an ended request is remembered (idempotent retries attach to it). Default 1 h. */
  retainMs?: number;
  /** Minimum share of hand-outs per class under contention. Default DEFAULT_RESERVES. */
  reserves?: ClassShares;
  /** Shedding bounds. Absent: never shed. */
  shed?: ShedOptions;
  /** Sequences the deployment's ready groups hold now: shedding's drain estimate before one is measured. */
  slots?: () => number;
  /** Window of the dispatch-rate estimate, whole seconds. Default 10 s. */
  rateWindowSeconds?: number;
  /** Shedding reads the queue's load at most this often (ms); 0 reads it on every submit. Default 250 ms. */
  loadMaxAgeMs?: number;
}

export interface SubmitRequest {
  /** Client-given or generated; the idempotency key. */
  id: string;
  tenant: string;
  /** The tenant's weight in its class (Tenant.weight). */
  weight: number;
  cls: PriorityClass;
  /** Opaque to the queue: the gateway's serialized GenerateRequest. */
  body: string;
  /** What fairness counts, e.g. 1 per request or prompt + max tokens. Default 1. */
  cost?: number;
  /** Absolute deadline, ms since the epoch (the clock's). Absent: none. */
  deadline?: number;
  /** W3C traceparent of the submitting call, handed to the dispatcher (not part of the idempotency hash). */
  trace?: string;
}

/**
 * `taken`: with submit(req, takeFor), what the same script handed to that owner (see submit()); `readyLeft`:
 * how many requests were still ready (waiting for a take) right after that.
 */
export type SubmitOutcome =
  | { t: 'enqueued'; taken?: TakenRequest[]; readyLeft?: number }
  | { t: 'attached'; state: RequestState };

export interface TakenRequest {
  id: string;
  body: string;
  tenant: string;
  cls: PriorityClass;
  /** 1 on the first hand-out; > 1 means an earlier owner lost it: continue from the stream log. */
  attempt: number;
  deadline: number | undefined;
  submittedAt: number;
  cost: number;
  /** The submitter's traceparent ('' when none). */
  trace: string;
}

export type CancelOutcome =
  | { t: 'removed' }
  | { t: 'dispatched'; owner: string }
  | { t: 'ended'; state: RequestState }
  | { t: 'not_found' };

export interface RequestRecord {
  id: string;
  tenant: string;
  cls: PriorityClass;
  state: RequestState;
  attempts: number;
  owner: string | undefined;
  leaseUntil: number | undefined;
  deadline: number | undefined;
  submittedAt: number;
  error: { code: string; message: string } | undefined;
  /** The submitted body while the request has not ended. */
  body: string | undefined;
  /** When a client last (re)attached to the request's stream (touchAttached), on any controller. */
  attachedAt: number | undefined;
}

interface Scripts {
  corralQSubmit(...a: (string | number)[]): Promise<[string, string, string[][]?, number?]>;
  corralQTake(...a: (string | number)[]): Promise<string[][]>;
  corralQRenew(...a: (string | number)[]): Promise<[string[], string[]]>;
  corralQSettle(...a: (string | number)[]): Promise<number>;
  corralQCancel(...a: (string | number)[]): Promise<[string, string]>;
  corralQMaintain(...a: (string | number)[]): Promise<[number, number]>;
}

const SWEEP_LIMIT = 1000;

export class RequestQueue {
  readonly base: string;
  readonly leaseMs: number;
  private readonly maxAttempts: number;
  /** How long an ended request is remembered (RequestQueueOptions.retainMs). */
  readonly retainMs: number;
  private readonly reserves: number[];
  private readonly windowSeconds: number;
  private readonly scripts: Scripts;
  private readonly sheddingLoad: SheddingLoad;

  constructor(private readonly options: RequestQueueOptions) {
    this.base = queueBase(options.prefix ?? 'corral', options.deployment);
    this.leaseMs = options.leaseMs ?? 5000;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retainMs = options.retainMs ?? 3_600_000;
    const reserves = options.reserves ?? DEFAULT_RESERVES;
    const problems = validateReserves(reserves);
    if (problems.length > 0)
      throw new ValidationError(
        'queue options',
        problems.map((p) => ({ path: p.slice(0, p.indexOf(':')), message: p.slice(p.indexOf(':') + 2) })),
      );
    this.reserves = PRIORITY_CLASSES.map((c) => reserveUnits(reserves[c]));
    this.windowSeconds = options.rateWindowSeconds ?? 10;
    this.sheddingLoad = new SheddingLoad(() => this.load(), options.loadMaxAgeMs ?? 250);
    const r = options.redis;
    r.defineCommand('corralQSubmit', { numberOfKeys: 0, lua: SUBMIT });
    r.defineCommand('corralQTake', { numberOfKeys: 0, lua: TAKE });
    r.defineCommand('corralQRenew', { numberOfKeys: 0, lua: RENEW });
    r.defineCommand('corralQSettle', { numberOfKeys: 0, lua: SETTLE });
    r.defineCommand('corralQCancel', { numberOfKeys: 0, lua: CANCEL });
    r.defineCommand('corralQMaintain', { numberOfKeys: 0, lua: MAINTAIN });
    this.scripts = r as unknown as Scripts;
  }

  /**
   * Queue a request, or attach to the one already queued under its id. Throws RequestIdConflictError (the id
   * holds another body), QueueFullError (shed, with retry-after) or RequestExpiredError (deadline passed).
   * A retry of an accepted request is never shed: it attaches whatever the load.
   * With `takeFor` (a dispatcher that has room for one more now), the same script then takes the queue's next
   * request for that owner, as take(takeFor, 1) would right after: usually this one (nothing waited ahead), so
   * the request is dispatched without a second round trip or a PUBLISH. Not taken, it waits as usual.
   */
  async submit(req: SubmitRequest, takeFor?: string): Promise<SubmitOutcome> {
    const now = this.options.clock.now();
    let shed: QueueFullError | undefined;
    let admitted = false;
    const shedOptions = this.options.shed;
    if (shedOptions) {
      const slots = this.options.slots?.() ?? 0;
      const d = await this.sheddingLoad.decide(now, req.cls, (load) =>
        decideShed({ ...load, slots }, req.cls, shedOptions),
      );
      if (d.t === 'shed')
        shed = new QueueFullError(this.options.deployment, d.retryAfterMs, d.expectedWaitMs, d.reason);
      admitted = d.t === 'admit';
    }
    let reply: Awaited<ReturnType<Scripts['corralQSubmit']>> | undefined;
    try {
      reply = await this.scripts.corralQSubmit(
        this.base,
        req.id,
        bodyHash(req),
        req.body,
        req.tenant,
        req.cls,
        tagIncrement(req.cost ?? 1, req.weight),
        req.deadline ?? 0,
        now,
        shed ? '1' : '0',
        req.cost ?? 1,
        req.trace ?? '',
        ...(takeFor === undefined ? [] : this.takeArgs(takeFor, 1, now)),
      );
    } finally {
      // Settled even when the script failed: a held place would shed requests for good.
      if (admitted) this.sheddingLoad.settle(req.cls, reply?.[0] === 'enqueued' && reply[1] === 'queued');
    }
    const [outcome, state, taken, readyLeft] = reply;
    switch (outcome) {
      case 'enqueued':
        return takeFor === undefined
          ? { t: 'enqueued' }
          : { t: 'enqueued', taken: (taken ?? []).map(takenOf), readyLeft: readyLeft ?? 0 };
      case 'attached':
        return { t: 'attached', state: state as RequestState };
      case 'conflict':
        throw new RequestIdConflictError(req.id);
      case 'expired':
        throw new RequestExpiredError(req.id);
      default:
        throw shed ?? new Error(`unexpected submit outcome ${outcome}`);
    }
  }

  /**
   * A client (re)attached to the request's stream (a retry or a Resume, on any controller): a detached
   * client's controller checks this before cancelling the request. A request already forgotten stays so.
   */
  async touchAttached(id: string): Promise<void> {
    await this.options.redis.eval(
      "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'attached', ARGV[1]) end",
      1,
      requestKey(this.base, id),
      this.options.clock.now(),
    );
  }

  /**
   * Hand out up to n requests in priority and fair order, leased to `owner` for leaseMs. Call it only when a
   * group has room for n more: requests wait here, where priority and fairness act, not in the engines.
   * Also hands back requests whose lease ran out and expires those past their deadline.
   * Fewer than n handed out means nothing was left ready.
   */
  async take(owner: string, n: number): Promise<TakenRequest[]> {
    if (n <= 0) return [];
    const rows = await this.scripts.corralQTake(...this.takeArgs(owner, n, this.options.clock.now()));
    return rows.map(takenOf);
  }

  /** TAKE's arguments (queue-scripts.ts), also what SUBMIT takes after its own to take in the same script. */
  private takeArgs(owner: string, n: number, now: number): (string | number)[] {
    return [
      this.base,
      owner,
      n,
      now,
      this.leaseMs,
      this.maxAttempts,
      this.retainMs,
      ...this.reserves,
      CREDIT_UNIT,
      SWEEP_LIMIT,
    ];
  }

  /**
   * Extend the owner's leases. `lost`: no longer this owner's (lease ran out and the request was handed on,
   * or it ended): stop working on them. `cancelRequested`: the client cancelled: abort the engine request,
   * then settle(…, 'failed') or let the lease lapse.
   */
  async renew(owner: string, ids: readonly string[]): Promise<{ lost: string[]; cancelRequested: string[] }> {
    if (ids.length === 0) return { lost: [], cancelRequested: [] };
    const [lost, cancelRequested] = await this.scripts.corralQRenew(
      this.base,
      owner,
      this.options.clock.now(),
      this.leaseMs,
      ...ids,
    );
    return { lost, cancelRequested };
  }

  /** The stream ended normally. false: the caller no longer owned the request. */
  finish(owner: string, id: string): Promise<boolean> {
    return this.settle(owner, id, 'finished', '', '');
  }

  /** Give up on the request with an error its client will see (code is an ErrorCode). */
  fail(owner: string, id: string, code: string, message: string): Promise<boolean> {
    return this.settle(owner, id, 'failed', code, message);
  }

  /** Hand the request back at once (its group failed), to be continued by the next take(). */
  release(owner: string, id: string, why: string): Promise<boolean> {
    return this.settle(owner, id, 'release', '', why);
  }

  /**
   * Before dispatch: removed. After: flagged, and the owner learns it at its next renew(). With `tenant`, a
   * request of another tenant is not_found (checked in the same script, so an id cannot change hands between).
   */
  async cancel(id: string, tenant?: string): Promise<CancelOutcome> {
    const [t, v] = await this.scripts.corralQCancel(
      this.base,
      id,
      this.options.clock.now(),
      this.retainMs,
      tenant ?? '',
    );
    if (t === 'removed') return { t };
    if (t === 'dispatched') return { t, owner: v };
    if (t === 'ended') return { t, state: v as RequestState };
    return { t: 'not_found' };
  }

  /** Hand back lapsed leases and expire overdue requests without taking any (a periodic chore). */
  async maintain(): Promise<{ leasesReclaimed: number; deadlinesSwept: number }> {
    const [leasesReclaimed, deadlinesSwept] = await this.scripts.corralQMaintain(
      this.base,
      this.options.clock.now(),
      this.maxAttempts,
      this.retainMs,
      SWEEP_LIMIT,
    );
    return { leasesReclaimed, deadlinesSwept };
  }

  async get(id: string): Promise<RequestRecord | undefined> {
    const h = await this.options.redis.hgetall(requestKey(this.base, id));
    if (!h.state) return undefined;
    const num = (v: string | undefined) => (v && Number(v) > 0 ? Number(v) : undefined);
    return {
      id,
      tenant: h.tenant ?? '',
      cls: h.cls as PriorityClass,
      state: h.state as RequestState,
      attempts: Number(h.attempts ?? 0),
      owner: h.owner || undefined,
      leaseUntil: h.state === 'dispatched' ? num(h.lease) : undefined,
      deadline: num(h.deadline),
      submittedAt: Number(h.submitted ?? 0),
      error: h.error_code ? { code: h.error_code, message: h.error_msg ?? '' } : undefined,
      body: h.body,
      attachedAt: num(h.attached),
    };
  }

  /** Waiting requests per class and the queue's drain rate: for shedding and for the autoscaler (queue-load.ts). */
  load(): Promise<QueueLoad & { leased: number }> {
    return readQueueLoad(this.options.redis, this.base, this.options.clock.now(), this.windowSeconds);
  }

  private async settle(owner: string, id: string, how: string, code: string, msg: string): Promise<boolean> {
    const r = await this.scripts.corralQSettle(
      this.base,
      owner,
      id,
      how,
      this.options.clock.now(),
      this.maxAttempts,
      this.retainMs,
      code,
      msg,
    );
    return r === 1;
  }
}

/** A row of TAKE's reply. */
function takenOf(r: string[]): TakenRequest {
  return {
    id: r[0] as string,
    body: r[1] as string,
    tenant: r[2] as string,
    cls: r[3] as PriorityClass,
    attempt: Number(r[4]),
    deadline: Number(r[5]) > 0 ? Number(r[5]) : undefined,
    submittedAt: Number(r[6]),
    cost: Number(r[7]),
    trace: r[8] ?? '',
  };
}

/** The tenant is part of the identity: another tenant reusing an id must not attach to this request. */
function bodyHash(req: SubmitRequest): string {
  return createHash('sha256').update(`${req.tenant}\n${req.cls}\n`).update(req.body).digest('hex');
}
