/**
 * The worker's side of Registry.Register, the bidirectional stream to the controller. Hello{inventory} first,
 * then a Heartbeat every interval (the controller's Welcome may set it) and at once whenever `heartbeatNow` is
 * called (engine state changes), so an engine exit reaches the controller within its 2 s budget rather than at
 * the next tick. Directives are handed to `onDirective`.
 *
 * Connection lifecycle (one guarded transition, logged OLD -> NEW):
 *   connecting  a stream was opened and Hello sent; no Welcome yet
 *   connected   Welcome received; heartbeats flow
 *   backoff     the stream broke (or the controller refused us); reconnecting after a jittered delay
 *   closed      stop() was called; final
 * When the controller answers ALREADY_EXISTS it has this worker_id on another live stream (a previous
 * incarnation it has not yet seen die, or a misconfigured duplicate id): logged loudly, retried with backoff.
 */
import { type ClientDuplexStream, type ServiceError, status } from '@grpc/grpc-js';
import type { Logger } from '../../common/log.ts';
import type {
  ControllerMessage,
  Heartbeat,
  Hello,
  WorkerMessage,
} from '../../proto/gen/corral/v1/registry.ts';
import { backoffDelay } from '../engine/restart-policy.ts';

export type RegistryStream = ClientDuplexStream<WorkerMessage, ControllerMessage>;

export interface RegistryConnectionDeps {
  /** Opens a new Register stream (the gRPC channel itself reconnects underneath). */
  open(): RegistryStream;
  hello(): Hello;
  /** Called before each periodic heartbeat, e.g. to scrape engine metrics, within `timeoutMs`. */
  refresh(timeoutMs: number): Promise<void>;
  heartbeat(): Heartbeat;
  onDirective(message: ControllerMessage): void;
  random: () => number;
  log: Logger;
  heartbeatMs: number;
}

type ConnState =
  | { t: 'connecting'; stream: RegistryStream; attempt: number }
  | { t: 'connected'; stream: RegistryStream }
  | { t: 'backoff'; attempt: number; timer: NodeJS.Timeout }
  | { t: 'closed' };

const ALLOWED_FROM: Record<ConnState['t'], readonly (ConnState['t'] | 'initial')[]> = {
  connecting: ['initial', 'backoff'],
  connected: ['connecting'],
  backoff: ['connecting', 'connected'],
  closed: ['initial', 'connecting', 'connected', 'backoff'],
};

export const RECONNECT_BACKOFF = { initialDelayMs: 250, maxDelayMs: 10_000, jitter: 0.3 };

export class RegistryConnection {
  private s: ConnState | { t: 'initial' } = { t: 'initial' };
  private heartbeatMs: number;
  private tickTimer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(private readonly deps: RegistryConnectionDeps) {
    this.heartbeatMs = deps.heartbeatMs;
  }

  get connected(): boolean {
    return this.s.t === 'connected';
  }

  start(): void {
    this.connect(1);
  }

  /** Sends a heartbeat now if a stream is up (otherwise the next Hello + heartbeat carries the news). */
  heartbeatNow(): void {
    const s = this.s;
    if (s.t === 'connected' || s.t === 'connecting')
      this.send(s.stream, { msg: { $case: 'heartbeat', value: this.deps.heartbeat() } });
  }

  /** Sends a last heartbeat, half-closes the stream and stops reconnecting. */
  async stop(): Promise<void> {
    const s = this.s;
    if (s.t === 'closed') return;
    clearTimeout(this.tickTimer);
    this.set({ t: 'closed' });
    if (s.t === 'backoff') clearTimeout(s.timer);
    if (s.t === 'connected' || s.t === 'connecting') {
      this.send(s.stream, { msg: { $case: 'heartbeat', value: this.deps.heartbeat() } });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          s.stream.cancel();
          resolve();
        }, 1000);
        s.stream.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        s.stream.once('error', () => undefined);
        s.stream.end();
      });
    }
  }

  private connect(attempt: number): void {
    const stream = this.deps.open();
    this.set({ t: 'connecting', stream, attempt });
    stream.on('data', (m: ControllerMessage) => this.onMessage(stream, m));
    stream.on('error', (e: ServiceError) => this.onBroken(stream, e));
    stream.on('end', () => this.onBroken(stream, undefined));
    this.send(stream, { msg: { $case: 'hello', value: this.deps.hello() } });
    // Heartbeat straight away: the controller learns engine states (after a reconnect: engines that kept
    // running) without waiting a full interval.
    this.send(stream, { msg: { $case: 'heartbeat', value: this.deps.heartbeat() } });
    this.scheduleTick();
  }

  private onMessage(stream: RegistryStream, m: ControllerMessage): void {
    const s = this.s;
    if ((s.t !== 'connecting' && s.t !== 'connected') || s.stream !== stream) return;
    const msg = m.msg;
    // Any answer proves the controller accepted us; Welcome is expected first but is not relied upon.
    if (s.t === 'connecting') this.set({ t: 'connected', stream });
    if (msg?.$case === 'welcome') {
      if (msg.value.heartbeatIntervalMs > 0) this.heartbeatMs = msg.value.heartbeatIntervalMs;
      this.scheduleTick();
      return;
    }
    if (msg) this.deps.onDirective(m);
  }

  private onBroken(stream: RegistryStream, e: ServiceError | undefined): void {
    const s = this.s;
    if ((s.t !== 'connecting' && s.t !== 'connected') || s.stream !== stream) return;
    clearTimeout(this.tickTimer);
    const attempt = s.t === 'connecting' ? s.attempt + 1 : 1;
    const delay = backoffDelay(RECONNECT_BACKOFF, attempt, this.deps.random);
    if (e?.code === status.ALREADY_EXISTS) {
      this.deps.log.error(
        'controller refused registration: this worker_id is already registered on another live stream; retrying',
        {
          details: e.details,
          retryInMs: delay,
        },
      );
    } else if (e?.code === status.UNAUTHENTICATED) {
      // Retrying is still right: the secret may be rotated on the controller side first.
      this.deps.log.error('controller refused registration: cluster token missing or wrong; retrying', {
        details: e.details,
        retryInMs: delay,
      });
    } else {
      this.deps.log.warn('registry stream broke; reconnecting', {
        code: e ? status[e.code] : 'END',
        details: e?.details ?? 'controller ended the stream',
        retryInMs: delay,
      });
    }
    stream.cancel();
    const timer = setTimeout(() => {
      if (this.s.t === 'backoff') this.connect(attempt);
    }, delay);
    this.set({ t: 'backoff', attempt, timer });
  }

  private scheduleTick(): void {
    clearTimeout(this.tickTimer);
    if (this.s.t === 'closed') return;
    this.tickTimer = setTimeout(() => void this.tick(), this.heartbeatMs);
  }

  /**
   * Fixed rate: the next tick is scheduled before this one's refresh, and the refresh gets at most half the
   * interval, so a hung engine's slow /metrics cannot stretch the heartbeat period into the controller's
   * worker timeout.
   */
  private async tick(): Promise<void> {
    this.scheduleTick();
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.deps.refresh(Math.max(50, Math.floor(this.heartbeatMs / 2)));
    } catch (e) {
      this.deps.log.warn('heartbeat refresh failed', { error: e instanceof Error ? e : String(e) });
    } finally {
      this.ticking = false;
    }
    const s = this.s;
    if (s.t !== 'connected' && s.t !== 'connecting') return;
    this.send(s.stream, { msg: { $case: 'heartbeat', value: this.deps.heartbeat() } });
  }

  private send(stream: RegistryStream, m: WorkerMessage): void {
    try {
      stream.write(m);
    } catch (e) {
      // writing after the stream ended throws; the 'error'/'end' handler is already reconnecting
      this.deps.log.debug('registry write failed', { error: e instanceof Error ? e : String(e) });
    }
  }

  private set(next: ConnState): void {
    const from = this.s.t;
    if (!ALLOWED_FROM[next.t].includes(from))
      throw new Error(`illegal registry connection transition ${from} -> ${next.t}`);
    this.deps.log.info(`registry ${from} -> ${next.t}`, { from, to: next.t });
    this.s = next;
  }
}
