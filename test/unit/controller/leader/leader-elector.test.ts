/**
 * The elector over a scripted store and a manual clock: what it may do between two rounds (a stalled renewal
 * does not extend its term), how an unreachable store ends a term, and what stop() releases.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { LeaderElector } from '../../../../controller/leader/leader-elector.ts';
import type { LeaseChange, LeaseReply } from '../../../../controller/leader/lease-decision.ts';
import type { LeaseStore } from '../../../../controller/leader/redis-lease.ts';

const policy = { leaseMs: 3000, renewMs: 1000, marginMs: 200 };

function setup() {
  const clock = new ManualClock(10_000);
  const replies: LeaseReply[] = [];
  const calls: string[] = [];
  let pending: ((r: LeaseReply) => void) | undefined;
  let stall = false;
  const answer = (call: string): Promise<LeaseReply> => {
    calls.push(call);
    if (stall) return new Promise((resolve) => (pending = resolve));
    const r = replies.shift();
    if (!r) throw new Error(`no scripted reply for ${call}`);
    return Promise.resolve(r);
  };
  const store: LeaseStore = {
    acquire: (id) => answer(`acquire ${id}`),
    renew: (id, epoch) => answer(`renew ${id} ${epoch}`),
    release: async (id, epoch) => {
      calls.push(`release ${id} ${epoch}`);
    },
    holder: async () => undefined,
  };
  const changes: LeaseChange[] = [];
  const elector = new LeaderElector({ id: 'ctl-a', store, policy, clock, log: silentLogger });
  elector.onChange((c) => changes.push(c));
  return {
    clock,
    elector,
    calls,
    changes,
    reply: (...r: LeaseReply[]) => replies.push(...r),
    stall: (on: boolean) => {
      stall = on;
    },
    unstall: (r: LeaseReply) => pending?.(r),
  };
}

describe('LeaderElector', () => {
  it('a leader whose renewal hangs stops acting when its term ends, without waiting for the answer', async () => {
    const t = setup();
    t.reply({ t: 'acquired', epoch: 3 });
    await t.elector.tick();
    expect(t.elector.epoch()).toBe(3);
    t.stall(true);
    const hanging = t.elector.tick(); // renew sent at 10_000: would extend to 12_800
    t.clock.advance(2799);
    expect(t.elector.epoch()).toBe(3);
    t.clock.advance(1);
    expect(t.elector.epoch()).toBeUndefined();
    expect(t.changes.at(-1)).toEqual({ t: 'expired', epoch: 3, why: 'no renewal within the lease' });
    // the renewal's late answer does not bring the term back: we already stepped down
    t.unstall({ t: 'renewed' });
    await hanging;
    expect(t.elector.epoch()).toBeUndefined();
    expect(t.calls).toEqual(['acquire ctl-a', 'renew ctl-a 3']);
  });

  it('follows the holder it is told of and campaigns again next round', async () => {
    const t = setup();
    t.reply({ t: 'held', holder: { id: 'ctl-b', epoch: 7 } }, { t: 'acquired', epoch: 8 });
    await t.elector.tick();
    expect(t.elector.leader()).toEqual({ id: 'ctl-b', epoch: 7 });
    await t.elector.tick();
    expect(t.elector.leader()).toEqual({ id: 'ctl-a', epoch: 8 });
    expect(t.calls).toEqual(['acquire ctl-a', 'acquire ctl-a']);
  });

  it('stop() releases a held lease once and reports the end of the term; a follower releases nothing', async () => {
    const t = setup();
    t.reply({ t: 'acquired', epoch: 4 });
    await t.elector.tick();
    await t.elector.stop();
    expect(t.calls).toEqual(['acquire ctl-a', 'release ctl-a 4']);
    expect(t.changes).toEqual([
      { t: 'elected', epoch: 4 },
      { t: 'expired', epoch: 4, why: 'replica stopping' },
    ]);
    expect(t.elector.epoch()).toBeUndefined();
    await t.elector.tick(); // stopped: no more rounds
    expect(t.calls).toHaveLength(2);

    const f = setup();
    f.reply({ t: 'held', holder: undefined });
    await f.elector.tick();
    await f.elector.stop();
    expect(f.calls).toEqual(['acquire ctl-a']);
  });
});
