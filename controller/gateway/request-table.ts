/**
 * The requests this controller's dispatchers are running right now: who serves each (for a lost worker, for the
 * outstanding counts the scheduler and the dispatcher's room read, for draining groups). An entry lives from
 * the take out of the queue to the end of the worker call.
 */
import { CorralError } from '../../common/errors.ts';

export interface RunningRequest {
  requestId: string;
  deployment: string;
  /** Set once the request is dispatched (before that it is being validated and counted). */
  engineId?: string;
  workerId?: string;
  /** Ends the request: cancels the worker call (if any) and ends the client's stream with this error. */
  abort(error: CorralError): void;
}

/** A request's place in the table, from admission to the end of its stream. */
export interface Ticket {
  /** The request was sent to this engine: it now counts toward the engine's outstanding requests. */
  assign(engineId: string, workerId: string): void;
  release(): void;
}

export class RequestTable {
  private readonly byId = new Map<string, RunningRequest>();
  private readonly perEngine = new Map<string, number>();

  /** Registers a request; throws ALREADY_EXISTS when the id is already running here. */
  add(r: RunningRequest): Ticket {
    if (this.byId.has(r.requestId))
      throw new CorralError(
        'already_exists',
        `request ${r.requestId} is already running; request ids must be unique`,
        { requestId: r.requestId },
      );
    this.byId.set(r.requestId, r);
    let state: 'admitted' | 'assigned' | 'released' = 'admitted';
    return {
      assign: (engineId, workerId) => {
        if (state !== 'admitted') return;
        state = 'assigned';
        r.engineId = engineId;
        r.workerId = workerId;
        this.perEngine.set(engineId, (this.perEngine.get(engineId) ?? 0) + 1);
      },
      release: () => {
        if (state === 'released') return;
        const wasAssigned = state === 'assigned';
        state = 'released';
        this.byId.delete(r.requestId);
        if (!wasAssigned || r.engineId === undefined) return;
        const n = (this.perEngine.get(r.engineId) ?? 1) - 1;
        if (n <= 0) this.perEngine.delete(r.engineId);
        else this.perEngine.set(r.engineId, n);
      },
    };
  }

  has(requestId: string): boolean {
    return this.byId.has(requestId);
  }

  /** Where a running request is (the engine and worker serving it, once dispatched). */
  get(requestId: string): Readonly<RunningRequest> | undefined {
    return this.byId.get(requestId);
  }

  outstanding(engineId: string): number {
    return this.perEngine.get(engineId) ?? 0;
  }

  outstandingOf(deployment: string): number {
    let n = 0;
    for (const r of this.byId.values()) if (r.deployment === deployment) n += 1;
    return n;
  }

  /** Cancel by id; false when no such request is running. */
  cancel(requestId: string, error: CorralError): boolean {
    const r = this.byId.get(requestId);
    if (!r) return false;
    r.abort(error);
    return true;
  }

  /** Ends every request served by a worker (it was lost: its streams would otherwise hang until TCP notices). */
  abortWorker(workerId: string, error: CorralError): number {
    const hit = [...this.byId.values()].filter((r) => r.workerId === workerId);
    for (const r of hit) r.abort(error);
    return hit.length;
  }

  abortAll(error: CorralError): void {
    for (const r of [...this.byId.values()]) r.abort(error);
  }

  get size(): number {
    return this.byId.size;
  }
}
