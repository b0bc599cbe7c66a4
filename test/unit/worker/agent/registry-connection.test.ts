import { EventEmitter } from 'node:events';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../../common/log.ts';
import type { ControllerMessage, WorkerMessage } from '../../../../proto/gen/corral/v1/registry.ts';
import { RegistryConnection, type RegistryStream } from '../../../../worker/agent/registry-connection.ts';

/** A Register stream without gRPC: records writes; the test plays the controller. */
class FakeStream extends EventEmitter {
  readonly written: WorkerMessage[] = [];
  ended = false;
  cancelled = false;
  write(m: WorkerMessage): boolean {
    if (this.ended || this.cancelled) throw new Error('write after end');
    this.written.push(m);
    return true;
  }
  end(): void {
    this.ended = true;
    queueMicrotask(() => this.emit('close'));
  }
  cancel(): void {
    this.cancelled = true;
  }
  reply(m: ControllerMessage): void {
    this.emit('data', m);
  }
  kinds(): string[] {
    return this.written.map((m) => m.msg?.$case ?? '?');
  }
}

let streams: FakeStream[];
let logs: { msg: string; [k: string]: unknown }[];
let directives: ControllerMessage[];
let refreshes: number[];
let conn: RegistryConnection;

beforeEach(() => {
  vi.useFakeTimers();
  streams = [];
  logs = [];
  directives = [];
  refreshes = [];
  conn = new RegistryConnection({
    open: () => {
      const s = new FakeStream();
      streams.push(s);
      return s as unknown as RegistryStream;
    },
    hello: () => ({ inventory: undefined }),
    refresh: async (timeoutMs) => {
      refreshes.push(timeoutMs);
    },
    heartbeat: () => ({ engines: [], sentAtMs: 0, draining: false }),
    onDirective: (m) => directives.push(m),
    random: () => 0.5,
    log: createLogger('test', { sink: (l) => logs.push(JSON.parse(l)) }),
    heartbeatMs: 1000,
  });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('RegistryConnection', () => {
  it('sends Hello then a heartbeat, then heartbeats at the Welcome interval after a bounded refresh', async () => {
    conn.start();
    const s = streams[0]!;
    expect(s.kinds()).toEqual(['hello', 'heartbeat']);
    s.reply({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 200 } } });
    expect(conn.connected).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(s.kinds()).toEqual(['hello', 'heartbeat', 'heartbeat']);
    expect(refreshes).toEqual([100]);
    await vi.advanceTimersByTimeAsync(400);
    expect(s.kinds()).toHaveLength(5);
  });

  it('sends a heartbeat at once on heartbeatNow and hands directives over', () => {
    conn.start();
    const s = streams[0]!;
    s.reply({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 60_000 } } });
    conn.heartbeatNow();
    expect(s.kinds()).toEqual(['hello', 'heartbeat', 'heartbeat']);
    const drain: ControllerMessage = { msg: { $case: 'drain', value: {} } };
    s.reply(drain);
    expect(directives).toEqual([drain]);
  });

  it('reconnects with growing backoff while the controller is unreachable, and resets once welcomed', async () => {
    conn.start();
    streams[0]!.emit('error', { code: status.UNAVAILABLE, details: 'connect ECONNREFUSED' });
    // attempt 2: 250 * 2 = 500 ms (no jitter at random() = 0.5)
    await vi.advanceTimersByTimeAsync(499);
    expect(streams).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(streams).toHaveLength(2);
    streams[1]!.emit('error', { code: status.UNAVAILABLE, details: 'connect ECONNREFUSED' });
    await vi.advanceTimersByTimeAsync(1000); // attempt 3: 1000 ms
    expect(streams).toHaveLength(3);
    expect(streams[2]!.kinds()).toEqual(['hello', 'heartbeat']);
    streams[2]!.reply({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 60_000 } } });
    streams[2]!.emit('end');
    await vi.advanceTimersByTimeAsync(250); // connected before: back to the first delay
    expect(streams).toHaveLength(4);
    expect(
      logs.filter((l) => l.msg === 'registry stream broke; reconnecting').map((l) => l.retryInMs),
    ).toEqual([500, 1000, 250]);
  });

  it('logs ALREADY_EXISTS as a duplicate registration and keeps retrying', async () => {
    conn.start();
    streams[0]!.emit('error', { code: status.ALREADY_EXISTS, details: 'worker n1 is already registered' });
    const line = logs.find((l) => l.level === 'error');
    expect(line?.msg).toContain('already registered on another live stream');
    expect(line?.details).toBe('worker n1 is already registered');
    await vi.advanceTimersByTimeAsync(500);
    expect(streams).toHaveLength(2);
  });

  it('stop() sends a last heartbeat, half-closes, and never reconnects', async () => {
    conn.start();
    const s = streams[0]!;
    s.reply({ msg: { $case: 'welcome', value: { heartbeatIntervalMs: 100 } } });
    await conn.stop();
    expect(s.ended).toBe(true);
    expect(s.kinds().at(-1)).toBe('heartbeat');
    const count = s.written.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(streams).toHaveLength(1);
    expect(s.written).toHaveLength(count);
  });
});
