/**
 * Two controller replicas' electors on a real Redis, driven one round at a time (tick()) so the test decides
 * who is alive: one leads, the other follows and names it; a leader that stops renewing is replaced by the
 * first attempt after its lease expires, under a higher epoch; the old leader stops acting when its own term
 * ends and learns it was deposed at its next renewal; a leader that stops gracefully hands over at once.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { LeaderElector } from '../../../../controller/leader/leader-elector.ts';
import type { LeaseChange, LeasePolicy } from '../../../../controller/leader/lease-decision.ts';
import { RedisLeaseStore } from '../../../../controller/leader/redis-lease.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const policy: LeasePolicy = { leaseMs: 800, renewMs: 250, marginMs: 50 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function electors(prefix: string) {
  const store = new RedisLeaseStore(redis.client, prefix);
  const make = (id: string) => {
    const changes: LeaseChange[] = [];
    const e = new LeaderElector({ id, store, policy, clock: systemClock, log: silentLogger });
    e.onChange((c) => changes.push(c));
    return { e, changes };
  };
  return { store, a: make('ctl-a'), b: make('ctl-b') };
}

describe('LeaderElector on Redis', () => {
  it('one replica leads, the other follows and names it', async () => {
    const { store, a, b } = electors(testPrefix('one-leader'));
    await a.e.tick();
    await b.e.tick();
    const epoch = a.e.epoch();
    expect(epoch).toBeGreaterThan(0);
    expect(b.e.epoch()).toBeUndefined();
    expect(b.e.leader()).toEqual({ id: 'ctl-a', epoch });
    expect(await store.holder()).toEqual({ id: 'ctl-a', epoch });
    // renewing keeps the same term
    await a.e.tick();
    await b.e.tick();
    expect(a.e.epoch()).toBe(epoch);
    expect(b.e.epoch()).toBeUndefined();
    expect(a.changes).toEqual([{ t: 'elected', epoch }]);
    expect(b.changes).toEqual([]);
  });

  it('a leader that stops renewing is replaced after its lease, under a higher epoch, and is deposed', async () => {
    const { a, b } = electors(testPrefix('takeover'));
    await a.e.tick();
    const old = a.e.epoch() ?? -1;
    // a "dies": no more rounds. Once its lease has expired in Redis, b's next attempt wins.
    await sleep(policy.leaseMs + 50);
    expect(a.e.epoch()).toBeUndefined(); // its own term ended first (sentAt + lease - margin)
    await b.e.tick();
    const next = b.e.epoch() ?? -1;
    expect(next).toBeGreaterThan(old);
    expect(b.changes).toEqual([{ t: 'elected', epoch: next }]);
    // a comes back: its attempt finds b holding the lease
    await a.e.tick();
    expect(a.e.epoch()).toBeUndefined();
    expect(a.e.leader()).toEqual({ id: 'ctl-b', epoch: next });
    expect(a.changes).toEqual([
      { t: 'elected', epoch: old },
      { t: 'expired', epoch: old, why: 'no renewal within the lease' },
    ]);
  });

  it('a renewal by a leader whose lease another replica took is refused: deposed', async () => {
    const prefix = testPrefix('deposed');
    const { a, b } = electors(prefix);
    await a.e.tick();
    const old = a.e.epoch() ?? -1;
    // b takes the lease as if a's had expired in Redis while a's own clock still gave it time
    await redis.client.del(`${prefix}:lease`);
    await b.e.tick();
    const next = b.e.epoch() ?? -1;
    await a.e.tick();
    expect(a.e.epoch()).toBeUndefined();
    expect(a.changes.at(-1)).toEqual({ t: 'deposed', epoch: old, by: { id: 'ctl-b', epoch: next } });
  });

  it('a leader that stops releases the lease: the follower takes over at its next attempt', async () => {
    const { a, b } = electors(testPrefix('release'));
    await a.e.tick();
    await b.e.tick();
    const old = a.e.epoch() ?? -1;
    await a.e.stop();
    await b.e.tick();
    expect(b.e.epoch()).toBe(old + 1);
  });

  it('after Redis lost its epoch counter, a new leader still gets an epoch above every one it has seen', async () => {
    const prefix = testPrefix('lost-counter');
    const { a, b } = electors(prefix);
    await a.e.tick();
    await b.e.tick(); // b sees a's epoch
    const old = a.e.epoch() ?? -1;
    await redis.client.del(`${prefix}:lease`, `${prefix}:epoch`); // a restart without the last second of AOF
    await b.e.tick();
    expect(b.e.epoch()).toBe(old + 1);
  });

  it('start() campaigns on its own timer: a follower takes over when the leader is stopped', async () => {
    const { a, b } = electors(testPrefix('timers'));
    a.e.start();
    await until(() => a.e.epoch() !== undefined);
    b.e.start();
    await until(() => b.e.leader()?.id === 'ctl-a');
    await a.e.stop();
    await until(() => b.e.epoch() !== undefined);
    expect(b.e.leader()?.id).toBe('ctl-b');
    await b.e.stop();
  });
});

async function until(probe: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !probe(); i++) await sleep(25);
  expect(probe()).toBe(true);
}
