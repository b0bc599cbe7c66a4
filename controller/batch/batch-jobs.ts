/**
 * Which controller drives which batch: a BullMQ queue of one job per batch (job id = batch id, so submitting a
 * batch twice adds one job), processed by a BullMQ Worker on every controller replica with `concurrency`
 * batches at a time. BullMQ fits here where it did not fit the request queue (request-queue.ts): a batch is a
 * long job whose order does not matter, handed to one replica at a time under a lock that BullMQ renews, and
 * found again by BullMQ's stalled-job check when that replica dies, to be continued by another from the batch's
 * state in Redis (batch-driver.ts). job.updateProgress mirrors the batch's progress for BullMQ's own tooling;
 * the batch store stays the source of truth.
 *
 * How soon a dead replica's batch moves (issue 5: within seconds, not BullMQ's 30 s defaults): its lock
 * (lockDuration = batch.lockMs, 5 s) is renewed every batch.lockRenewMs (1 s) while the replica lives; BullMQ's
 * stalled check (every batch.stalledCheckMs, 1 s, run by one replica per interval) marks the active batches and,
 * at its next run, moves back to wait those still marked whose lock has expired (a renewal unmarks). So a batch
 * moves lockMs to lockMs + 2 x stalledCheckMs after its replica's last renewal, and a waiting replica's worker
 * is woken at once. Every stall counts against maxStalledCount, and each is a replica that died or froze, never
 * the batch's fault, so it is unbounded.
 *
 * A replica whose event loop stalls past the lock (lockMs - lockRenewMs without a renewal) loses the batch while
 * still driving it; BullMQ does not stop its processor, so the replica stops the batch's driver when its next
 * renewal fails and leaves the job to its new holder. Until then both drive it, which the driver allows: lines
 * are fed under request ids that attach, and results are written once (batch-store.ts).
 *
 * A controller that stops cleanly hands its batches back at once (moveToWait), not after the lock runs out.
 */
import { Queue, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/log.ts';
import type { BatchConfig } from './batch-config.ts';
import type { DriveOutcome } from './batch-driver.ts';
import type { BatchProgress } from './batch-state.ts';

/** Drives one batch until it ends ('ended') or the signal fires ('stopped'). */
export type DriveFn = (
  batchId: string,
  signal: AbortSignal,
  onProgress: (p: BatchProgress) => Promise<void>,
) => Promise<DriveOutcome>;

interface JobData {
  batchId: string;
}

const QUEUE_NAME = 'batches';
/** A driver that throws (Redis gone for long) is retried; a batch fails only after this many. */
const ATTEMPTS = 20;

export interface BatchJobsOptions {
  /** A connection with maxRetriesPerRequest: null (what BullMQ's Worker requires); not closed here. */
  redis: Redis;
  prefix: string;
  config: BatchConfig;
  drive: DriveFn;
  /** Called when a batch's driver failed ATTEMPTS times: the batch is marked failed with the reason. */
  onGiveUp: (batchId: string, reason: string) => Promise<void>;
  log: Logger;
}

export class BatchJobs {
  private readonly queue: Queue<JobData>;
  private readonly worker: Worker<JobData>;
  private readonly stop = new AbortController();
  /** The batches driven here, each with what stops its driver when this replica loses the batch's lock. */
  private readonly driving = new Map<string, AbortController>();

  constructor(private readonly o: BatchJobsOptions) {
    const common = { connection: o.redis, prefix: `${o.prefix}:bull` };
    this.queue = new Queue<JobData>(QUEUE_NAME, common);
    this.worker = new Worker<JobData>(
      QUEUE_NAME,
      (job, token) => this.process(job.data.batchId, job, token),
      {
        ...common,
        autorun: false,
        concurrency: o.config.concurrency,
        lockDuration: o.config.lockMs,
        lockRenewTime: o.config.lockRenewMs,
        stalledInterval: o.config.stalledCheckMs,
        // Every stall is a controller that died; the batch's state is in Redis, so it is always worth continuing.
        maxStalledCount: Number.MAX_SAFE_INTEGER,
      },
    );
    this.worker.on('lockRenewalFailed', (batchIds) => {
      for (const batchId of batchIds) this.lockLost(batchId);
    });
    this.worker.on('error', (e) => o.log.warn('batch worker error', { error: e.message }));
    this.worker.on('stalled', (batchId) =>
      o.log.warn('batch taken back from a controller that stopped renewing its lock', { batchId }),
    );
    this.worker.on('failed', (job, e) => {
      if (!job || job.attemptsMade < ATTEMPTS) return;
      o.onGiveUp(job.data.batchId, e.message).catch((x: unknown) =>
        o.log.warn('marking a batch failed did not work', { batchId: job.data.batchId, error: String(x) }),
      );
    });
  }

  /** Starts taking batches (this replica's share of them). */
  start(): void {
    this.worker.run().catch((e: unknown) => this.o.log.error('batch worker stopped', { error: String(e) }));
  }

  /** Queues a batch to be driven by some replica; a second add of the same batch is a no-op. */
  async add(batchId: string): Promise<void> {
    await this.queue.add(
      'batch',
      { batchId },
      {
        jobId: batchId,
        attempts: ATTEMPTS,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
        removeOnFail: { age: Math.ceil(this.o.config.retainMs / 1000) },
      },
    );
  }

  /** Hands the batches driven here back to the queue and closes the worker and the queue. */
  async close(): Promise<void> {
    this.stop.abort();
    await this.worker.close();
    await this.queue.close();
  }

  private async process(
    batchId: string,
    job: { updateProgress(p: object): Promise<void>; moveToWait(token?: string): Promise<number> },
    token: string | undefined,
  ): Promise<void> {
    // Handed a batch it still drives: its lock ran out and BullMQ moved the batch back before a renewal failed.
    this.lockLost(batchId);
    const lock = new AbortController();
    this.driving.set(batchId, lock);
    this.o.log.info('driving batch', { batchId });
    try {
      const signal = AbortSignal.any([this.stop.signal, lock.signal]);
      const outcome = await this.o.drive(batchId, signal, (p) => job.updateProgress(p));
      // The job has another holder now: completing or moving it would fail on the lock; leave it as it is.
      if (lock.signal.aborted) throw new WaitingError();
      if (outcome === 'ended') return;
      await job.moveToWait(token);
      throw new WaitingError();
    } finally {
      if (this.driving.get(batchId) === lock) this.driving.delete(batchId);
    }
  }

  private lockLost(batchId: string): void {
    const lock = this.driving.get(batchId);
    if (!lock || lock.signal.aborted) return;
    this.o.log.warn('lost the lock of a batch it drives (a stall past batch.lockMs); its driver stops here', {
      batchId,
    });
    lock.abort();
  }
}
