/**
 * The controller's view of every worker that ever registered: inventory, engines (as last reported), last
 * heartbeat, draining, and whether its Register stream is live. It holds no gRPC: the Registry service attaches a
 * Session (send a directive, end the stream) per stream, so tests and the launcher drive it directly.
 *
 * Worker lifecycle (one guarded transition, logged OLD -> NEW):
 *   connected  a stream is live and messages arrive within workerTimeoutMs
 *   lost       the stream ended, or went silent past workerTimeoutMs; its engines are unroutable at once.
 *              A new stream with the same worker_id brings it back to connected.
 * A second stream for a worker_id whose stream is still live is refused (ALREADY_EXISTS): two processes with
 * one id would each get the other's directives.
 */
import type { Clock } from '../../common/clock.ts';
import { CorralError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { ControllerMessage, Heartbeat } from '../../proto/gen/corral/v1/registry.ts';
import type { EngineStatus, Inventory } from '../../proto/gen/corral/v1/worker.ts';

/** What the registry needs of one Register stream. */
export interface Session {
  send(message: ControllerMessage): void;
  /** Ends the stream with an error status (the worker reconnects if it is alive). */
  close(reason: string): void;
}

export type WorkerConnection =
  | { t: 'connected'; sinceMs: number; session: Session; sessionId: number; peer: string }
  | { t: 'lost'; sinceMs: number; reason: string };

export interface WorkerRecord {
  readonly workerId: string;
  inventory: Inventory;
  engines: EngineStatus[];
  lastHeartbeatMs: number;
  draining: boolean;
  /** A heartbeat arrived on the current stream, so `engines` is what the worker runs now (not a stale list). */
  reported: boolean;
  conn: WorkerConnection;
}

export type RegistryEvent =
  | { t: 'connected'; workerId: string }
  | { t: 'updated'; workerId: string }
  | { t: 'lost'; workerId: string; reason: string };

export class AlreadyRegisteredError extends CorralError {
  override name = 'AlreadyRegisteredError';
  constructor(workerId: string, peer: string) {
    super('already_exists', `worker ${workerId} is already registered (connected from ${peer})`, {
      workerId,
      peer,
    });
  }
}

const ALLOWED_FROM: Record<WorkerConnection['t'], readonly (WorkerConnection['t'] | 'new')[]> = {
  connected: ['new', 'lost'],
  lost: ['connected'],
};

export class WorkerRegistry {
  private readonly records = new Map<string, WorkerRecord>();
  private readonly listeners: Array<(e: RegistryEvent) => void> = [];
  private nextSessionId = 1;

  constructor(private readonly options: { workerTimeoutMs: number; clock: Clock; log: Logger }) {}

  onEvent(listener: (e: RegistryEvent) => void): void {
    this.listeners.push(listener);
  }

  /** A Hello arrived on a new stream. Returns the session id the stream's later messages must carry. */
  attach(inventory: Inventory, peer: string, session: Session): number {
    const workerId = inventory.workerId;
    const now = this.options.clock.now();
    const existing = this.records.get(workerId);
    if (existing?.conn.t === 'connected') throw new AlreadyRegisteredError(workerId, existing.conn.peer);
    const sessionId = this.nextSessionId++;
    const conn: WorkerConnection = { t: 'connected', sinceMs: now, session, sessionId, peer };
    if (existing) {
      existing.inventory = inventory;
      existing.lastHeartbeatMs = now;
      // Engines are re-reported by the heartbeat that follows Hello; until then keep none routable.
      existing.engines = [];
      existing.reported = false;
      existing.draining = false;
      this.transition(existing, conn);
    } else {
      const record: WorkerRecord = {
        workerId,
        inventory,
        engines: [],
        lastHeartbeatMs: now,
        reported: false,
        draining: false,
        conn,
      };
      this.records.set(workerId, record);
      this.options.log.info(`worker ${workerId}: new -> connected`, {
        workerId,
        from: 'new',
        to: 'connected',
        peer,
      });
    }
    this.emit({ t: 'connected', workerId });
    return sessionId;
  }

  heartbeat(workerId: string, sessionId: number, hb: Heartbeat): void {
    const r = this.live(workerId, sessionId);
    if (!r) return;
    r.lastHeartbeatMs = this.options.clock.now();
    r.engines = hb.engines;
    r.draining = hb.draining;
    r.reported = true;
    this.emit({ t: 'updated', workerId });
  }

  /** The stream of this session ended (or broke). */
  detach(workerId: string, sessionId: number, reason: string): void {
    const r = this.live(workerId, sessionId);
    if (!r) return;
    this.lose(r, reason);
  }

  /** Marks workers silent past workerTimeoutMs as lost and ends their streams. Call periodically. */
  sweep(): void {
    const now = this.options.clock.now();
    for (const r of this.records.values()) {
      if (r.conn.t !== 'connected') continue;
      const silentMs = now - r.lastHeartbeatMs;
      if (silentMs <= this.options.workerTimeoutMs) continue;
      const session = r.conn.session;
      this.lose(r, `no heartbeat for ${silentMs} ms (timeout ${this.options.workerTimeoutMs} ms)`);
      session.close(`no heartbeat for ${silentMs} ms; registration dropped`);
    }
  }

  /** Sends a directive to a connected worker; false when it is not connected. */
  send(workerId: string, message: ControllerMessage): boolean {
    const r = this.records.get(workerId);
    if (r?.conn.t !== 'connected') return false;
    r.conn.session.send(message);
    return true;
  }

  get(workerId: string): WorkerRecord | undefined {
    return this.records.get(workerId);
  }

  all(): readonly WorkerRecord[] {
    return [...this.records.values()].sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  /** The connection state of a session, or undefined once another session replaced it. */
  sessionOf(workerId: string): number | undefined {
    const c = this.records.get(workerId)?.conn;
    return c?.t === 'connected' ? c.sessionId : undefined;
  }

  /** Ends every live stream (controller shutdown). */
  closeAll(reason: string): void {
    for (const r of this.records.values()) {
      if (r.conn.t !== 'connected') continue;
      const session = r.conn.session;
      this.lose(r, reason);
      session.close(reason);
    }
  }

  private live(workerId: string, sessionId: number): WorkerRecord | undefined {
    const r = this.records.get(workerId);
    return r?.conn.t === 'connected' && r.conn.sessionId === sessionId ? r : undefined;
  }

  private lose(r: WorkerRecord, reason: string): void {
    this.transition(r, { t: 'lost', sinceMs: this.options.clock.now(), reason });
    this.emit({ t: 'lost', workerId: r.workerId, reason });
  }

  private transition(r: WorkerRecord, next: WorkerConnection): void {
    const from = r.conn.t;
    if (!ALLOWED_FROM[next.t].includes(from))
      throw new Error(`illegal worker transition ${from} -> ${next.t} (${r.workerId})`);
    const level = next.t === 'lost' ? 'warn' : 'info';
    this.options.log[level](`worker ${r.workerId}: ${from} -> ${next.t}`, {
      workerId: r.workerId,
      from,
      to: next.t,
      ...(next.t === 'lost' ? { reason: next.reason } : { peer: next.peer }),
    });
    r.conn = next;
  }

  private emit(e: RegistryEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (error) {
        this.options.log.error('registry listener failed', {
          event: e.t,
          error: error instanceof Error ? error : String(error),
        });
      }
    }
  }
}
