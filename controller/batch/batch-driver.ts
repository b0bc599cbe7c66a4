/**
 * Drives one batch from its state in Redis (batch-store.ts) until it ends or the controller stops:
 *   validating   parse every line (batch-line.ts); a bad line gets its error result now; count the requests
 *   in_progress  each tick: collect the results of fed lines whose requests ended (their stream logs), then
 *                feed lines to the queue until maxOutstanding are in it, at priority class `batch`, as the
 *                batch's tenant, through the gateway's enqueue (context, budgets, shedding, like any request)
 *   cancelling   cancel every fed request (queued: removed; running: aborted), mark unfed lines cancelled,
 *                collect until no line is in the queue
 * A refusal that passes (budget spent, queue shedding, no group yet) pauses feeding for its retry-after; so a
 * batch of 50k lines never holds more than maxOutstanding queue entries, nor bypasses its tenant's budgets.
 *
 * Restart-safety: the cursor and the set of fed lines are in Redis, written after each enqueue; a line's
 * request id is batch id + custom_id, so a successor that feeds a line again attaches to its request (never a
 * second run), and results are written once (the store counts them in the same script).
 */
import type { Clock } from '../../common/clock.ts';
import { CorralError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';
import type { Deployment } from '../config/controller-config.ts';
import { type EnqueueDeps, enqueue } from '../gateway/enqueue.ts';
import type { Lane } from '../gateway/request-path.ts';
import type { RequestRecord } from '../queue/request-queue.ts';
import { START } from '../queue/stream-log.ts';
import type { BatchConfig } from './batch-config.ts';
import { type BatchLine, BatchLineParser, isBlank, lineRequestId } from './batch-line.ts';
import {
  completionOutput,
  failedOutput,
  lineErrorOutput,
  loggedError,
  type OutputLine,
  type RanLine,
  succeeded,
} from './batch-output.ts';
import { allDone, type BatchProgress, isTerminal, onRefusal, progressOf } from './batch-state.ts';
import type { BatchRecord, BatchStore } from './batch-store.ts';

export interface DriverDeps {
  store: BatchStore;
  lanes: ReadonlyMap<string, Lane>;
  deployments: readonly Deployment[];
  /** What enqueue needs: the same admission, token counter and registry as the request path. */
  gateway: EnqueueDeps;
  config: BatchConfig;
  clock: Clock;
  log: Logger;
}

/** ended: the batch reached a terminal status (or is gone); stopped: the signal fired first. */
export type DriveOutcome = 'ended' | 'stopped';

const ENDED_STATES = new Set(['finished', 'failed', 'cancelled', 'expired']);
const READ_CHUNK = 500;

export async function driveBatch(
  deps: DriverDeps,
  batchId: string,
  signal: AbortSignal,
  onProgress: (p: BatchProgress) => Promise<void> = async () => {},
): Promise<DriveOutcome> {
  const log = deps.log.child({ batchId });
  const first = await deps.store.getBatch(batchId);
  if (!first) {
    log.warn('batch to drive is gone (expired or never stored)');
    return 'ended';
  }
  const d = new Driver(deps, first, log);
  let reported = '';
  while (!signal.aborted) {
    const b = await deps.store.getBatch(batchId);
    if (!b || isTerminal(b.status)) return 'ended';
    await d.step(b);
    const now = await deps.store.getBatch(batchId);
    if (now) {
      const p = progressOf(now.status, now.counts);
      if (JSON.stringify(p) !== reported) {
        reported = JSON.stringify(p);
        await onProgress(p);
      }
      if (isTerminal(now.status)) return 'ended';
    }
    await sleep(deps.config.pollMs, signal);
  }
  return 'stopped';
}

class Driver {
  /** Parsed lines fed to the queue and not yet ended, by line number (re-read after a restart). */
  private readonly inQueue = new Map<number, BatchLine>();
  /** Feeding waits until then after a refusal that passes by itself. */
  private waitUntil = 0;
  private cancelSent = false;

  constructor(
    private readonly deps: DriverDeps,
    private readonly batch: BatchRecord,
    private readonly log: Logger,
  ) {}

  async step(b: BatchRecord): Promise<void> {
    switch (b.status) {
      case 'validating':
        return this.validate(b);
      case 'in_progress':
        await this.collect(b);
        if (this.deps.clock.now() >= b.expiresAt) await this.close(b, 'batch_expired');
        else await this.feed(b);
        return this.finishIfDone(b.id);
      case 'cancelling':
        // Cancelled while validating: count the lines and give the bad ones their errors first.
        if (b.at.in_progress === undefined && b.counts.total === 0) await this.validate(b);
        await this.cancelFed(b);
        await this.close(b, 'batch_cancelled');
        await this.collect(b);
        return this.finishIfDone(b.id);
      default:
        return;
    }
  }

  /** A fresh parser: custom_ids are remembered by one parser, i.e. per pass over the file. */
  private lineParser(): BatchLineParser {
    return new BatchLineParser({
      batchId: this.batch.id,
      url: this.batch.url,
      deployments: this.deps.deployments,
    });
  }

  private async validate(b: BatchRecord): Promise<void> {
    const file = await this.deps.store.getFile(b.inputFileId);
    if (!file) {
      await this.deps.store.transition(
        b.id,
        'failed',
        this.deps.clock.now(),
        `input file ${b.inputFileId} is gone (deleted or expired) before the batch read it`,
      );
      return;
    }
    const parser = this.lineParser();
    let total = 0;
    for (let from = 0; from < file.lines; from += READ_CHUNK) {
      const lines = await this.deps.store.fileLines(file.id, from, READ_CHUNK);
      for (const [i, text] of lines.entries()) {
        if (isBlank(text)) continue;
        total += 1;
        const parsed = parser.parse(text, from + i + 1);
        if (!parsed.ok) await this.record(b.id, parsed.error.line, lineErrorOutput(b.id, parsed.error));
      }
    }
    await this.deps.store.setTotal(b.id, total);
    const moved = await this.deps.store.transition(b.id, 'in_progress', this.deps.clock.now());
    this.log.info('batch validated', { total, moved });
  }

  /** Results of the fed lines whose requests ended. */
  private async collect(b: BatchRecord): Promise<void> {
    const fed = await this.deps.store.fed(b.id);
    await Promise.all(
      fed.map(async (n) => {
        const line = this.inQueue.get(n) ?? (await this.reread(b, n));
        if (!line) return;
        const lane = this.laneOf(line);
        const requestId = line.generate.requestId;
        const record = await lane.queue.get(requestId);
        if (record && !ENDED_STATES.has(record.state)) return;
        const output =
          (await this.outcome(b, line, lane, record)) ??
          (record &&
            failedOutput(
              this.ranOf(b, line),
              new CorralError('internal', `request ${requestId} ${record.state}, but its stream log is gone`),
            ));
        if (output) await this.record(b.id, n, output);
        // The queue lost the request (its store lost recent writes): feed it again, or, cancelling, end it.
        else if (b.status === 'in_progress') await this.enqueueLine(b, line);
        else
          await this.record(
            b.id,
            n,
            failedOutput(this.ranOf(b, line), new CorralError('cancelled', 'batch cancelled')),
          );
      }),
    );
  }

  /** The output of an ended request; undefined when neither its record nor its log says how it ended. */
  private async outcome(
    b: BatchRecord,
    line: BatchLine,
    lane: Lane,
    record: RequestRecord | undefined,
  ): Promise<OutputLine | undefined> {
    const ran = this.ranOf(b, line);
    const events: GenerateEvent[] = [];
    let after = START;
    for (;;) {
      const page = await lane.log.read(ran.requestId, after, 1000);
      for (const e of page) {
        after = e.cursor;
        if (e.t === 'error') return failedOutput(ran, loggedError(e.code, e.message));
        events.push(e.event);
      }
      if (page.length < 1000) break;
    }
    if (events.some((e) => e.event?.$case === 'finished')) return completionOutput(ran, events);
    if (record?.error) return failedOutput(ran, loggedError(record.error.code, record.error.message));
    if (record?.state === 'cancelled')
      return failedOutput(ran, new CorralError('cancelled', 'request cancelled before dispatch'));
    if (record?.state === 'expired')
      return failedOutput(
        ran,
        new CorralError('deadline_exceeded', 'the batch expired before the request ran'),
      );
    return undefined;
  }

  /** Feeds lines from the cursor until maxOutstanding are in the queue or a refusal says wait. */
  private async feed(b: BatchRecord): Promise<void> {
    if (this.deps.clock.now() < this.waitUntil) return;
    const end = await this.fileLength(b);
    let cursor = b.cursor;
    let room = this.deps.config.maxOutstanding - b.counts.outstanding;
    try {
      while (room > 0 && cursor < end) {
        const texts = await this.deps.store.fileLines(b.inputFileId, cursor, READ_CHUNK);
        if (texts.length === 0) return;
        const have = await this.deps.store.results(b.id, cursor + 1, texts.length);
        for (const [i, text] of texts.entries()) {
          if (!isBlank(text) && have[i] === undefined) {
            // Parsed on its own: duplicates got their result when the batch was validated (skipped above),
            // and a line fed again after a wait must not count as a second use of its custom_id.
            const parsed = this.lineParser().parse(text, cursor + 1);
            const fed = parsed.ok
              ? await this.enqueueLine(b, parsed.value)
              : await this.record(b.id, cursor + 1, lineErrorOutput(b.id, parsed.error));
            if (fed === 'wait') return;
            if (fed === 'fed') room -= 1;
          }
          cursor += 1;
          if (room <= 0) return;
        }
      }
    } finally {
      if (cursor > b.cursor) await this.deps.store.advance(b.id, cursor);
    }
  }

  /** Puts one line's request in its deployment's queue; 'wait' leaves the line for a later tick. */
  private async enqueueLine(b: BatchRecord, line: BatchLine): Promise<'fed' | 'failed' | 'wait'> {
    const lane = this.laneOf(line);
    try {
      await enqueue(this.deps.gateway, {
        req: line.generate,
        requestId: line.generate.requestId,
        deployment: line.deployment,
        prompt: line.prompt,
        who: { tenant: b.tenant, weight: b.weight, cls: 'batch' },
        queue: lane.queue,
        deadline: b.expiresAt,
      });
    } catch (e) {
      if (!(e instanceof CorralError)) throw e;
      const r = onRefusal(e, this.deps.config.pollMs);
      if (r.t === 'wait') {
        this.waitUntil = this.deps.clock.now() + r.ms;
        this.log.info('batch feeding paused', { line: line.line, ms: r.ms, reason: e.message });
        return 'wait';
      }
      return this.record(b.id, line.line, failedOutput(this.ranOf(b, line), e));
    }
    this.inQueue.set(line.line, line);
    await this.deps.store.markFed(b.id, line.line);
    return 'fed';
  }

  private async cancelFed(b: BatchRecord): Promise<void> {
    if (this.cancelSent) return;
    this.cancelSent = true;
    const fed = await this.deps.store.fed(b.id);
    await Promise.all(
      fed.map(async (n) => {
        const line = this.inQueue.get(n) ?? (await this.reread(b, n));
        if (line) await this.laneOf(line).queue.cancel(line.generate.requestId, b.tenant);
      }),
    );
    this.log.info('batch cancelled; its queued lines removed, running ones aborted', { fed: fed.length });
  }

  /** Every line not fed yet gets `code` as its error (cancelled or expired), and the cursor goes to the end. */
  private async close(b: BatchRecord, code: 'batch_cancelled' | 'batch_expired'): Promise<void> {
    const end = await this.fileLength(b);
    const message =
      code === 'batch_cancelled'
        ? 'the batch was cancelled before this request was sent'
        : 'the batch expired (completion window) before this request was sent';
    for (let from = b.cursor; from < end; from += READ_CHUNK) {
      const texts = await this.deps.store.fileLines(b.inputFileId, from, READ_CHUNK);
      const have = await this.deps.store.results(b.id, from + 1, texts.length);
      for (const [i, text] of texts.entries()) {
        if (isBlank(text) || have[i] !== undefined) continue;
        const n = from + i + 1;
        const parsed = this.lineParser().parse(text, n);
        const customId = parsed.ok ? parsed.value.customId : parsed.error.customId;
        await this.record(b.id, n, lineErrorOutput(b.id, { line: n, customId, code, message }));
      }
    }
    if (end > b.cursor) await this.deps.store.advance(b.id, end);
  }

  private async finishIfDone(id: string): Promise<void> {
    const b = await this.deps.store.getBatch(id);
    if (!b || b.counts.outstanding > 0 || b.cursor < (await this.fileLength(b)) || !allDone(b.counts)) return;
    const now = this.deps.clock.now();
    const to = b.status === 'cancelling' ? 'cancelled' : now >= b.expiresAt ? 'expired' : 'completed';
    if ((await this.deps.store.transition(id, to, now)) === 'ok')
      this.log.info(`batch ${to}`, { ...b.counts });
  }

  private async record(id: string, line: number, output: OutputLine): Promise<'failed'> {
    this.inQueue.delete(line);
    await this.deps.store.record(id, line, JSON.stringify(output), succeeded(output));
    return 'failed';
  }

  /** A fed line this driver did not feed (its predecessor did): read and parse it again. */
  private async reread(b: BatchRecord, n: number): Promise<BatchLine | undefined> {
    const [text] = await this.deps.store.fileLines(b.inputFileId, n - 1, 1);
    const parsed = text === undefined ? undefined : this.lineParser().parse(text, n);
    if (parsed?.ok) {
      this.inQueue.set(n, parsed.value);
      return parsed.value;
    }
    // The file expired under a running batch: the line can no longer be identified.
    const customId = parsed && !parsed.ok ? parsed.error.customId : null;
    const message = `line ${n} can no longer be read (its input file is gone)`;
    await this.record(b.id, n, lineErrorOutput(b.id, { line: n, customId, code: 'file_gone', message }));
    return undefined;
  }

  private fileLengthCache: number | undefined;
  private async fileLength(b: BatchRecord): Promise<number> {
    this.fileLengthCache ??= (await this.deps.store.getFile(b.inputFileId))?.lines ?? 0;
    return this.fileLengthCache;
  }

  private laneOf(line: BatchLine): Lane {
    const lane = this.deps.lanes.get(line.deployment.name);
    if (!lane) throw new Error(`no queue for deployment ${line.deployment.name}`);
    return lane;
  }

  private ranOf(b: BatchRecord, line: BatchLine): RanLine {
    return {
      batchId: b.id,
      line: line.line,
      customId: line.customId,
      requestId: lineRequestId(b.id, line.customId),
      endpoint: line.endpoint,
      model: line.generate.model,
      created: Math.floor(this.deps.clock.now() / 1000),
    };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
