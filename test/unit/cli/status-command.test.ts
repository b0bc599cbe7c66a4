import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../../cli/status-command.ts';
import type { ClusterStatus } from '../../../proto/gen/corral/v1/control.ts';

const base: ClusterStatus = {
  nowMs: 10_000,
  workers: [],
  deployments: [
    {
      name: 'llama-3.1-405b-instruct',
      model: 'm',
      readyReplicas: 1,
      desiredReplicas: 2,
      outstandingRequests: 0,
      pickReasons: {},
    },
  ],
  groups: [],
  replicaId: '',
  leaderId: '',
  leaderEpoch: 0,
};

describe('formatStatus', () => {
  it("prints what each deployment's dispatcher routed, by reason, most frequent first", () => {
    const text = formatStatus({
      ...base,
      deployments: [
        {
          ...(base.deployments[0] as ClusterStatus['deployments'][0]),
          pickReasons: { 'least outstanding': 6, 'prefix hit': 121 },
        },
      ],
    });
    expect(text.split('\n').find((l) => l.startsWith('llama-3.1-405b-instruct'))).toMatch(
      /1\/2\s+0\s+prefix hit 121, least outstanding 6$/,
    );
    expect(
      formatStatus(base)
        .split('\n')
        .find((l) => l.startsWith('llama-3.1-405b-instruct')),
    ).toMatch(/\s-$/);
  });

  it('prints each group with its state, ranks on which workers, restarts and last failure', () => {
    const text = formatStatus({
      ...base,
      groups: [
        {
          id: 'llama-3.1-405b-instruct-g1',
          deployment: 'llama-3.1-405b-instruct',
          state: 'ready',
          stateSinceMs: 4000,
          ranks: [
            { rank: 0, workerId: 'node-1', engineId: 'x.a1.r0' },
            { rank: 1, workerId: 'node-2', engineId: 'x.a1.r1' },
          ],
          restarts: 0,
          attempt: 1,
          lastFailure: '',
          waitingFor: '',
        },
        {
          id: 'llama-3.1-405b-instruct-g2',
          deployment: 'llama-3.1-405b-instruct',
          state: 'failed',
          stateSinceMs: 9000,
          ranks: [],
          restarts: 3,
          attempt: 4,
          lastFailure: 'rank 1 lost: worker node-4 stopped heartbeating; gave up after 3 rebuilds',
          waitingFor: '',
        },
      ],
    });
    const lines = text.split('\n');
    expect(lines.find((l) => l.startsWith('llama-3.1-405b-instruct-g1'))).toMatch(
      /^llama-3\.1-405b-instruct-g1\s+ready\s+6s\s+0:node-1 1:node-2\s+0\s+-$/,
    );
    expect(lines.find((l) => l.startsWith('llama-3.1-405b-instruct-g2'))).toMatch(
      /failed\s+1s\s+-\s+3\s+rank 1 lost: worker node-4 stopped heartbeating; gave up after 3 rebuilds$/,
    );
  });

  it("prints a group whose state began after the answer's clock (a follower's view) as 0s old", () => {
    const text = formatStatus({
      ...base,
      groups: [
        {
          id: 'g9',
          deployment: 'llama-3.1-405b-instruct',
          state: 'ready',
          stateSinceMs: base.nowMs + 3,
          ranks: [],
          restarts: 0,
          attempt: 1,
          lastFailure: '',
          waitingFor: '',
        },
      ],
    });
    expect(text.split('\n').find((l) => l.startsWith('g9'))).toMatch(/^g9\s+ready\s+0s\s/);
  });

  it('prints no group table when the controller reports none', () => {
    expect(formatStatus(base)).not.toContain('GROUP');
  });

  it('names the replica that answered and the one leading the group reconciler', () => {
    const follower = { ...base, replicaId: 'ctl-2', leaderId: 'ctl-1', leaderEpoch: 4 };
    expect(formatStatus(follower).split('\n')[0]).toBe('controller ctl-2: leader ctl-1, epoch 4');
    const leader = { ...follower, leaderId: 'ctl-2', leaderEpoch: 5 };
    expect(formatStatus(leader).split('\n')[0]).toBe('controller ctl-2: leader this replica, epoch 5');
    expect(formatStatus({ ...follower, leaderId: '' }).split('\n')[0]).toBe(
      'controller ctl-2: no leader known',
    );
    expect(formatStatus(base).split('\n')[0]).toMatch(/^DEPLOYMENT/);
  });
});
