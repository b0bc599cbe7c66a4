/**
 * The lifecycle of one engine process, as its supervisor sees it. States mirror proto EngineState:
 *
 *   starting  spawned (pid) with an HTTP port chosen; /health not yet 200. vLLM opens the port only after
 *             loading weights and profiling the KV cache, so "connection refused" is normal here.
 *   ready     /health answered 200 (or, for a headless rank, the process is up: it serves no HTTP).
 *   exited    the process exited on its own; a restart is scheduled at `restartAt` (unless stopped meanwhile).
 *   stopping  we sent SIGTERM (then SIGKILL after the grace period) because of a stop, replace or shutdown.
 *   stopped   stopped on purpose; final.
 *   failed    gave up: never healthy within the start timeout, or the restart budget is spent; final.
 *
 * Every change goes through `transition`, which refuses moves the table does not allow and logs OLD -> NEW.
 */
import type { Logger } from '../../common/log.ts';
import { EngineState } from '../../proto/gen/corral/v1/worker.ts';

export interface ExitInfo {
  code: number; // -1 when killed by a signal
  signal: string;
  logTail: string[];
  atMs: number;
}

export type EngineLifecycle =
  | { t: 'starting'; since: number; pid: number; port: number | undefined; attempt: number }
  | { t: 'ready'; since: number; pid: number; port: number | undefined }
  | { t: 'exited'; since: number; exit: ExitInfo; restartAt: number }
  | { t: 'stopping'; since: number; pid: number | undefined; reason: string }
  | { t: 'stopped'; since: number }
  | { t: 'failed'; since: number; detail: string };

export type EngineStateTag = EngineLifecycle['t'];

/** Which states each state may be entered from. */
const ALLOWED_FROM: Record<EngineStateTag, readonly EngineStateTag[]> = {
  starting: ['exited'], // the first start is the initial state, not a transition
  ready: ['starting'],
  exited: ['starting', 'ready'],
  stopping: ['starting', 'ready', 'exited'],
  stopped: ['stopping', 'exited'],
  failed: ['starting', 'ready', 'exited', 'stopping'],
};

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
  constructor(
    readonly from: EngineStateTag,
    readonly to: EngineStateTag,
  ) {
    super(`illegal engine state transition ${from} -> ${to}`);
  }
}

export function canTransition(from: EngineStateTag, to: EngineStateTag): boolean {
  return ALLOWED_FROM[to].includes(from);
}

/** The one guarded way to change state: returns the new state or throws; logs `OLD -> NEW`. */
export function transition(current: EngineLifecycle, next: EngineLifecycle, log: Logger): EngineLifecycle {
  if (!canTransition(current.t, next.t)) throw new IllegalTransitionError(current.t, next.t);
  log.info(`${current.t} -> ${next.t}`, { from: current.t, to: next.t, detail: describe(next) });
  return next;
}

export function isFinal(s: EngineLifecycle): boolean {
  return s.t === 'stopped' || s.t === 'failed';
}

export function toProtoState(t: EngineStateTag): EngineState {
  switch (t) {
    case 'starting':
      return EngineState.ENGINE_STATE_STARTING;
    case 'ready':
      return EngineState.ENGINE_STATE_READY;
    case 'exited':
      return EngineState.ENGINE_STATE_EXITED;
    case 'stopping':
      return EngineState.ENGINE_STATE_STOPPING;
    case 'stopped':
      return EngineState.ENGINE_STATE_STOPPED;
    case 'failed':
      return EngineState.ENGINE_STATE_FAILED;
  }
}

/** The human-readable reason shown in EngineStatus.detail. */
export function describe(s: EngineLifecycle): string {
  switch (s.t) {
    case 'starting':
      return `pid ${s.pid} starting (attempt ${s.attempt})${s.port === undefined ? '' : `, waiting for /health on port ${s.port}`}`;
    case 'ready':
      return `pid ${s.pid} ready${s.port === undefined ? ' (headless)' : ` on port ${s.port}`}`;
    case 'exited':
      return `exited with ${s.exit.signal ? `signal ${s.exit.signal}` : `code ${s.exit.code}`}; restart in ${Math.max(0, s.restartAt - s.since)} ms`;
    case 'stopping':
      return `stopping: ${s.reason}`;
    case 'stopped':
      return 'stopped';
    case 'failed':
      return s.detail;
  }
}
