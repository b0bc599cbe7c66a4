import { describe, expect, it } from 'vitest';
import { replicasTarget } from '../../../cli/endpoint.ts';

describe('replicasTarget', () => {
  it('joins several loopback replicas into one ipv4: target (pick_first skips a dead one)', () => {
    expect(replicasTarget(['127.0.0.1:7070', '127.0.0.1:7071'])).toBe('ipv4:127.0.0.1:7070,127.0.0.1:7071');
  });

  it('leaves one replica, none, or names that are not IPv4 to the plain address', () => {
    expect(replicasTarget(['127.0.0.1:7070'])).toBeUndefined();
    expect(replicasTarget(undefined)).toBeUndefined();
    expect(replicasTarget(['localhost:7070', '127.0.0.1:7071'])).toBeUndefined();
  });
});
