/**
 * Offline batches, what the front doors call: upload a JSONL input file, create a batch over it, read its
 * progress, cancel it, read its results. The batch's lines run through the same queue as API requests at
 * priority class `batch` (batch-driver.ts), driven by whichever replica BullMQ hands the batch to
 * (batch-jobs.ts). Every call is scoped to the caller's tenant: another tenant's file or batch is not found.
 *
 * Limits (batch-config.ts): maxLines requests and maxFileBytes bytes per file, refused at upload with the
 * limit in the message; one completion window, 24h (OpenAI's only one), after which unfed lines expire.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import { InvalidArgumentError, NotFoundError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { Admitted } from '../admission/admission.ts';
import type { Deployment } from '../config/controller-config.ts';
import type { EnqueueDeps } from '../gateway/enqueue.ts';
import type { Lane } from '../gateway/request-path.ts';
import type { BatchConfig } from './batch-config.ts';
import { driveBatch } from './batch-driver.ts';
import { BatchJobs } from './batch-jobs.ts';
import { BATCH_URLS, type BatchUrl, isBatchUrl, isBlank, splitLines } from './batch-line.ts';
import { type OutputLine, succeeded } from './batch-output.ts';
import { type BatchRecord, BatchStore, type FileRecord } from './batch-store.ts';

export const COMPLETION_WINDOW = '24h';
const COMPLETION_WINDOW_MS = 24 * 3_600_000;
/** The virtual files of a batch's results: every line in input order, and only the failed ones. */
const OUTPUT_PREFIX = 'file-output-';
const ERRORS_PREFIX = 'file-errors-';

export interface NewFile {
  filename: string;
  purpose: string;
  content: Buffer;
}

export interface NewBatchRequest {
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
}

export interface BatchApi {
  readonly config: BatchConfig;
  uploadFile(who: Admitted, f: NewFile): Promise<FileRecord>;
  getFile(who: Admitted, id: string): Promise<FileRecord>;
  /** The file's content in chunks of whole lines; throws NotFoundError before the first chunk. */
  fileContent(who: Admitted, id: string): Promise<AsyncIterable<string>>;
  createBatch(who: Admitted, b: NewBatchRequest): Promise<BatchRecord>;
  getBatch(who: Admitted, id: string): Promise<BatchRecord>;
  /** The tenant's batches, newest first: `limit` of them after the batch `after` (OpenAI's cursor). */
  listBatches(
    who: Admitted,
    page: { after?: string; limit: number },
  ): Promise<{ batches: BatchRecord[]; hasMore: boolean }>;
  /** Asks the batch's driver to cancel it (status cancelling, then cancelled once no line runs). */
  cancelBatch(who: Admitted, id: string): Promise<BatchRecord>;
}

export function outputFileId(batchId: string): string {
  return `${OUTPUT_PREFIX}${batchId}`;
}

export function errorFileId(batchId: string): string {
  return `${ERRORS_PREFIX}${batchId}`;
}

export interface BatchesOptions {
  redisUrl: string;
  prefix: string;
  config: BatchConfig;
  deployments: readonly Deployment[];
  lanes: ReadonlyMap<string, Lane>;
  gateway: EnqueueDeps;
  clock: Clock;
  log: Logger;
}

export interface Batches {
  readonly api: BatchApi;
  /** Starts driving this replica's share of the batches. */
  start(): void;
  /** Hands the batches driven here to other replicas and closes Redis. */
  close(): Promise<void>;
}

export async function openBatches(o: BatchesOptions): Promise<Batches> {
  // BullMQ's Worker requires maxRetriesPerRequest null; a Redis restart then delays calls instead of failing.
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  redis.on('error', (e: Error) => o.log.warn('redis connection error; reconnecting', { error: e.message }));
  await redis.connect();
  const store = new BatchStore(redis, o.prefix, o.config.retainMs);
  const driverDeps = { ...o, store, log: o.log };
  const jobs = new BatchJobs({
    redis,
    prefix: o.prefix,
    config: o.config,
    log: o.log,
    drive: (id, signal, onProgress) => driveBatch(driverDeps, id, signal, onProgress),
    onGiveUp: async (id, reason) => {
      await store.transition(id, 'failed', o.clock.now(), `the batch's driver failed: ${reason}`);
    },
  });
  const api = batchApi(store, jobs, o);
  return {
    api,
    start: () => jobs.start(),
    close: async () => {
      await jobs.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

function batchApi(store: BatchStore, jobs: BatchJobs, o: BatchesOptions): BatchApi {
  const { config, clock } = o;
  const ownFile = async (who: Admitted, id: string): Promise<FileRecord> => {
    const f = await store.getFile(id);
    if (!f || f.tenant !== who.tenant) throw new NotFoundError(`no file ${id}`, { fileId: id });
    return f;
  };
  const ownBatch = async (who: Admitted, id: string): Promise<BatchRecord> => {
    const b = await store.getBatch(id);
    if (!b || b.tenant !== who.tenant) throw new NotFoundError(`no batch ${id}`, { batchId: id });
    return b;
  };
  return {
    config,
    uploadFile: async (who, f) => {
      if (f.purpose !== 'batch')
        throw new InvalidArgumentError(`purpose must be 'batch' (the only files served), got '${f.purpose}'`);
      if (f.content.length > config.maxFileBytes)
        throw new InvalidArgumentError(
          `the file is ${f.content.length} bytes; a batch file may have at most ${config.maxFileBytes} bytes`,
        );
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(f.content);
      } catch {
        throw new InvalidArgumentError('the file is not UTF-8 text; a batch file is JSONL');
      }
      const lines = splitLines(text);
      const requests = lines.filter((l) => !isBlank(l)).length;
      if (requests === 0)
        throw new InvalidArgumentError('the file has no lines; a batch file has one request a line');
      if (requests > config.maxLines)
        throw new InvalidArgumentError(
          `the file has ${requests} requests; a batch may have at most ${config.maxLines} (split it into several batches)`,
        );
      const record: FileRecord = {
        id: `file-${randomUUID().replaceAll('-', '')}`,
        tenant: who.tenant,
        filename: f.filename,
        purpose: f.purpose,
        bytes: f.content.length,
        lines: lines.length,
        createdAt: clock.now(),
      };
      await store.putFile(record, lines);
      return record;
    },
    getFile: async (who, id) => {
      const batchId = resultsOf(id);
      if (batchId === undefined) return ownFile(who, id);
      const b = await ownBatch(who, batchId.batch);
      return {
        id,
        tenant: b.tenant,
        filename: `${b.id}_${batchId.kind}.jsonl`,
        purpose: 'batch_output',
        bytes: 0,
        lines: b.counts.completed + b.counts.failed,
        createdAt: b.createdAt,
      };
    },
    fileContent: async (who, id) => {
      const results = resultsOf(id);
      if (results === undefined) {
        const f = await ownFile(who, id);
        return chunks(f.lines, async (from, n) => store.fileLines(f.id, from - 1, n));
      }
      const b = await ownBatch(who, results.batch);
      const f = await store.getFile(b.inputFileId);
      const end = f?.lines ?? b.cursor;
      return chunks(end, async (from, n) => {
        const r = (await store.results(b.id, from, n)).filter((v): v is string => v !== undefined);
        return results.kind === 'output' ? r : r.filter((v) => !isSuccess(v));
      });
    },
    createBatch: async (who, req) => {
      if (!isBatchUrl(req.endpoint))
        throw new InvalidArgumentError(
          `endpoint must be ${Object.keys(BATCH_URLS).join(' or ')}, got '${req.endpoint}'`,
        );
      if (req.completionWindow !== COMPLETION_WINDOW)
        throw new InvalidArgumentError(
          `completion_window must be '${COMPLETION_WINDOW}', got '${req.completionWindow}'`,
        );
      const f = await ownFile(who, req.inputFileId);
      if (f.purpose !== 'batch')
        throw new InvalidArgumentError(
          `file ${f.id} has purpose '${f.purpose}'; a batch needs purpose 'batch'`,
        );
      const now = clock.now();
      const id = `batch_${randomUUID().replaceAll('-', '')}`;
      await store.createBatch(
        {
          id,
          tenant: who.tenant,
          weight: who.weight,
          url: req.endpoint as BatchUrl,
          inputFileId: f.id,
          createdAt: now,
          expiresAt: now + COMPLETION_WINDOW_MS,
          metadata: req.metadata,
        },
        now,
      );
      await jobs.add(id);
      o.log.info('batch created', { batchId: id, tenant: who.tenant, file: f.id, endpoint: req.endpoint });
      return ownBatch(who, id);
    },
    getBatch: ownBatch,
    listBatches: async (who, page) => {
      const ids = await store.tenantBatches(who.tenant);
      const from = page.after === undefined ? 0 : ids.indexOf(page.after) + 1;
      if (page.after !== undefined && from === 0)
        throw new NotFoundError(`no batch ${page.after} (the list's 'after' cursor)`, {
          batchId: page.after,
        });
      const batches: BatchRecord[] = [];
      const gone: string[] = [];
      let i = from;
      for (; i < ids.length && batches.length < page.limit; i++) {
        const b = await store.getBatch(ids[i] as string);
        if (b) batches.push(b);
        else gone.push(ids[i] as string);
      }
      await store.forget(who.tenant, gone);
      return { batches, hasMore: i < ids.length };
    },
    cancelBatch: async (who, id) => {
      const b = await ownBatch(who, id);
      await store.transition(b.id, 'cancelling', clock.now());
      return ownBatch(who, id);
    },
  };
}

function resultsOf(fileId: string): { batch: string; kind: 'output' | 'errors' } | undefined {
  if (fileId.startsWith(OUTPUT_PREFIX)) return { batch: fileId.slice(OUTPUT_PREFIX.length), kind: 'output' };
  if (fileId.startsWith(ERRORS_PREFIX)) return { batch: fileId.slice(ERRORS_PREFIX.length), kind: 'errors' };
  return undefined;
}

function isSuccess(outputLine: string): boolean {
  return succeeded(JSON.parse(outputLine) as OutputLine);
}

/** Lines 1..count read `read(from, n)` at a time, each chunk one string of whole lines. */
async function* chunks(
  count: number,
  read: (from: number, n: number) => Promise<readonly string[]>,
): AsyncGenerator<string> {
  const CHUNK = 1000;
  for (let from = 1; from <= count; from += CHUNK) {
    const lines = await read(from, Math.min(CHUNK, count - from + 1));
    if (lines.length > 0) yield `${lines.join('\n')}\n`;
  }
}
