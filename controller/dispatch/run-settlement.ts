/**
 * How a dispatcher's run ends decides how its queue entry is settled:
 *   finished -> finish;  failed -> fail (the client gets the error);  retry -> release: the queue hands it to
 *   the next take (here or on another controller), which continues it from its stream log on another group,
 *   or fails it after maxAttempts;  stopped by a cancel -> fail CANCELLED;  by a lost lease -> nothing (it is
 *   someone else's now);  by the group leaving routing -> release;  by shutdown -> release.
 * A request handed back remembers the groups that failed it here, so its next attempt taken here avoids them
 * while another group has room.
 */
import type { Logger } from '../../common/log.ts';
import type { RequestQueue, TakenRequest } from '../queue/request-queue.ts';
import type { RunEnd } from './request-run.ts';

/** Why the dispatcher stopped a run. */
export type StopReason = { t: 'cancel' } | { t: 'lost' } | { t: 'release'; why: string } | { t: 'shutdown' };

const FAILED_ON_LIMIT = 10_000;

export class RunSettlement {
  /** Engines a request failed on here, avoided by its next attempt while another group has room. */
  private readonly failed = new Map<string, Set<string>>();

  constructor(
    private readonly queue: RequestQueue,
    private readonly owner: string,
    private readonly logger: Logger,
  ) {}

  /** The groups that failed this request here. */
  failedOn(id: string): ReadonlySet<string> | undefined {
    return this.failed.get(id);
  }

  async settle(t: TakenRequest, engineId: string, end: RunEnd, reason: StopReason | undefined) {
    const { queue, owner } = this;
    const log = this.logger.child({ requestId: t.id, engineId, attempt: t.attempt });
    if (end.t === 'stopped' && reason === undefined) end = { t: 'finished' }; // the log already ended
    switch (end.t) {
      case 'finished':
        this.failed.delete(t.id);
        if (!end.settled) await queue.finish(owner, t.id);
        log.info('finished');
        return;
      case 'failed':
        this.failed.delete(t.id);
        await queue.fail(owner, t.id, end.error.code, end.error.message);
        log.info('failed', { code: end.error.code, message: end.error.message });
        return;
      case 'retry':
        return this.handBack(t, engineId, end.why);
    }
    switch (reason?.t) {
      case 'cancel':
        this.failed.delete(t.id);
        await queue.fail(owner, t.id, 'cancelled', `request ${t.id} cancelled; engine request aborted`);
        log.info('cancelled');
        return;
      case 'lost':
        this.failed.delete(t.id);
        log.warn('lease lost; another controller continues the request');
        return;
      case 'release':
        return this.handBack(t, engineId, reason.why);
      case 'shutdown':
        await queue.release(owner, t.id, 'controller shutting down');
        return;
    }
  }

  private async handBack(t: TakenRequest, engineId: string, why: string): Promise<void> {
    const avoid = this.failed.get(t.id) ?? new Set<string>();
    avoid.add(engineId);
    this.failed.set(t.id, avoid);
    this.logger.warn('group failed a request; handing it back to continue elsewhere', {
      requestId: t.id,
      engineId,
      attempt: t.attempt,
      why,
    });
    // A hint for the next attempts taken here; another controller may finish the request, so keep it bounded.
    if (this.failed.size > FAILED_ON_LIMIT) this.failed.delete(this.failed.keys().next().value as string);
    await this.queue.release(this.owner, t.id, why);
  }
}
