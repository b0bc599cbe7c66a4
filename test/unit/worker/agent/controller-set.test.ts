import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../common/log.ts';
import {
  type ControllerLink,
  ControllerSet,
  type ControllerTarget,
} from '../../../../worker/agent/controller-set.ts';

function setup(targets: ControllerTarget[]) {
  let answer: string[] | Error = [];
  const events: string[] = [];
  const set = new ControllerSet({
    targets,
    resolve: async (host) => {
      if (answer instanceof Error) throw answer;
      events.push(`resolve ${host}`);
      return answer;
    },
    connect: (address): ControllerLink => {
      events.push(`connect ${address}`);
      return {
        heartbeatNow: () => events.push(`heartbeat ${address}`),
        stop: async () => {
          events.push(`stop ${address}`);
        },
      };
    },
    refreshMs: 60_000,
    log: silentLogger,
  });
  return { set, events, answer: (a: string[] | Error) => (answer = a) };
}

describe('ControllerSet', () => {
  it('connects to every listed replica once', async () => {
    const t = setup([
      { t: 'address', address: '127.0.0.1:7070' },
      { t: 'address', address: '127.0.0.1:7071' },
    ]);
    await t.set.start();
    await t.set.refresh();
    expect(t.events).toEqual(['connect 127.0.0.1:7070', 'connect 127.0.0.1:7071']);
    t.set.heartbeatNow();
    await t.set.stop();
    expect(t.events.slice(2)).toEqual([
      'heartbeat 127.0.0.1:7070',
      'heartbeat 127.0.0.1:7071',
      'stop 127.0.0.1:7070',
      'stop 127.0.0.1:7071',
    ]);
  });

  it('follows what a name resolves to: new replicas are connected, vanished ones stopped', async () => {
    const t = setup([{ t: 'dns', host: 'ctl.corral.svc', port: 7070 }]);
    t.answer(['10.0.0.1', '10.0.0.2', '10.0.0.1']);
    await t.set.start();
    expect(t.set.addresses).toEqual(['10.0.0.1:7070', '10.0.0.2:7070']);
    t.answer(['10.0.0.2', '10.0.0.3', 'fd00::4']);
    await t.set.refresh();
    expect(t.set.addresses).toEqual(['10.0.0.2:7070', '10.0.0.3:7070', '[fd00::4]:7070']);
    expect(t.events.filter((e) => !e.startsWith('resolve'))).toEqual([
      'connect 10.0.0.1:7070',
      'connect 10.0.0.2:7070',
      'connect 10.0.0.3:7070',
      'connect [fd00::4]:7070',
      'stop 10.0.0.1:7070',
    ]);
    await t.set.stop();
  });

  it('a failed lookup keeps the replicas of the last answer', async () => {
    const t = setup([{ t: 'dns', host: 'ctl.corral.svc', port: 7070 }]);
    t.answer(['10.0.0.1']);
    await t.set.start();
    t.answer(new Error('getaddrinfo EAI_AGAIN ctl.corral.svc'));
    await t.set.refresh();
    expect(t.set.addresses).toEqual(['10.0.0.1:7070']);
    expect(t.events.filter((e) => e.startsWith('stop'))).toEqual([]);
    await t.set.stop();
  });
});
