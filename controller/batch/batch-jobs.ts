/**
 * Which controller drives which batch: a BullMQ queue of one job per batch (job id = batch id, so submitting a
 * batch twice adds one job), processed by a BullMQ Worker on every controller replica with `concurrency`
 * batches at a time. BullMQ fits here where it did not fit the request queue (request-queue.ts): a batch is a
 * long job whose order does not matter, handed to one replica at a time under a lock that BullMQ renews, and
 * found again by BullMQ's stalled-job check when that replica dies (lockDuration = batch.lockMs), to be
 * continued by another from the batch's state in Redis (batch-driver.ts). job.updateProgress mirrors the
 * batch's progress for BullMQ's own tooling; the batch store stays the source of truth.
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
        stalledInterval: o.config.lockMs,
        // Every stall is a controller that died; the batch's state is in Redis, so it is always worth continuing.
        maxStalledCount: Number.MAX_SAFE_INTEGER,
      },
    );
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
    const outcome = await this.o.drive(batchId, this.stop.signal, (p) => job.updateProgress(p));
    if (outcome === 'ended') return;
    await job.moveToWait(token);
    throw new WaitingError();
  }
}
