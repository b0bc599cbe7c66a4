/**
 * The `batch:` section of the controller's config file (offline batches, controller/batch/): options ->
 * compile -> BatchConfig, every problem reported with its path. Shape and defaults:
 *   batch:
 *     maxLines: 50000          # requests per batch file (OpenAI's Batch API limit); more: the upload is refused
 *     maxFileBytes: 67108864   # bytes per batch file (64 MiB); a bigger upload is refused with 413
 *     retainMs: 604800000      # input files, results and batch records live this long in Redis (7 days)
 *     maxOutstanding: 64       # lines of one batch in the request queue at once (fed as they finish)
 *     concurrency: 4           # batches one controller drives at once (the rest wait in BullMQ)
 *     lockMs: 5000             # a controller that dies hands the batches it drove to another within about
 *                              # lockMs + stalledCheckMs (BullMQ's lockDuration; its default, 30 s, is too slow)
 *     lockRenewMs: 1000        # a driving controller renews each batch's lock this often (< lockMs), so only an
 *                              # event loop stalled for lockMs - lockRenewMs (4 s) loses a batch it still drives
 *     stalledCheckMs: 1000     # how often the replicas (one of them per interval) look for expired locks (<= lockMs)
 *     pollMs: 250              # how often a driver checks its outstanding lines and a cancel
 */
import type { FieldError } from '../../common/errors.ts';

export interface BatchConfig {
  readonly maxLines: number;
  readonly maxFileBytes: number;
  readonly retainMs: number;
  readonly maxOutstanding: number;
  readonly concurrency: number;
  readonly lockMs: number;
  readonly lockRenewMs: number;
  readonly stalledCheckMs: number;
  readonly pollMs: number;
}

export const BATCH_DEFAULTS: BatchConfig = {
  maxLines: 50_000,
  maxFileBytes: 64 * 1024 * 1024,
  retainMs: 7 * 24 * 3_600_000,
  maxOutstanding: 64,
  concurrency: 4,
  lockMs: 5000,
  lockRenewMs: 1000,
  stalledCheckMs: 1000,
  pollMs: 250,
};

/** Compiles `batch:`; problems are pushed to `errors` with their paths. */
export function compileBatchConfig(raw: unknown, errors: FieldError[]): BatchConfig {
  if (raw === undefined) return BATCH_DEFAULTS;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    errors.push({ path: 'batch', message: 'must be a mapping' });
    return BATCH_DEFAULTS;
  }
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!(k in BATCH_DEFAULTS)) errors.push({ path: `batch.${k}`, message: 'unknown field' });
  const out: Record<string, number> = { ...BATCH_DEFAULTS };
  for (const k of Object.keys(BATCH_DEFAULTS) as (keyof BatchConfig)[]) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      errors.push({ path: `batch.${k}`, message: `must be a positive integer, got ${JSON.stringify(v)}` });
    else out[k] = v;
  }
  const c = out as unknown as BatchConfig;
  // BullMQ renews a lock only while it holds it, and looks for expired ones every stalledCheckMs.
  if (c.lockRenewMs >= c.lockMs)
    errors.push({ path: 'batch.lockRenewMs', message: `must be less than batch.lockMs (${c.lockMs})` });
  if (c.stalledCheckMs > c.lockMs)
    errors.push({ path: 'batch.stalledCheckMs', message: `must be at most batch.lockMs (${c.lockMs})` });
  return c;
}
