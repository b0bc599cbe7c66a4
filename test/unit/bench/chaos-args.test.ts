import { describe, expect, it } from 'vitest';
import { CHAOS_DEFAULTS, parseChaosArgs } from '../../../bench/chaos/chaos-args.ts';

describe('parseChaosArgs', () => {
  it('defaults to the acceptance run: 500 requests', () => {
    expect(parseChaosArgs([])).toEqual({ t: 'ok', args: CHAOS_DEFAULTS });
    expect(CHAOS_DEFAULTS.requests).toBe(500);
  });

  it('reads every flag', () => {
    expect(
      parseChaosArgs([
        ...[
          '--requests',
          '80',
          '--concurrency',
          '16',
          '--rate',
          '2.5',
          '--seed',
          '7',
          '--json',
          '--keep-logs',
        ],
      ]),
    ).toEqual({
      t: 'ok',
      args: { requests: 80, concurrency: 16, rate: 2.5, seed: 7, json: true, keepLogs: true },
    });
  });

  it.each([
    [['--requests', '0'], '--requests must be an integer in [1, 100000], got "0"'],
    [['--requests', 'many'], '--requests must be an integer in [1, 100000], got "many"'],
    [['--concurrency', '1.5'], '--concurrency must be an integer in [1, 1024], got "1.5"'],
    [['--seed=-1'], '--seed must be an integer in [0, 2147483647], got "-1"'],
    [['--rate', '0'], '--rate must be a number of requests per second in (0, 1000], got "0"'],
  ])('refuses %j: %s', (argv, message) => {
    expect(parseChaosArgs(argv)).toEqual({ t: 'error', message });
  });

  it('names every bad flag at once, and unknown ones', () => {
    const r = parseChaosArgs(['--requests', 'x', '--rate', 'y']);
    expect(r.t === 'error' && r.message.split('; ')).toHaveLength(2);
    expect(parseChaosArgs(['--request', '5'])).toMatchObject({
      t: 'error',
      message: expect.stringContaining("'--request'"),
    });
    expect(parseChaosArgs(['extra'])).toMatchObject({
      t: 'error',
      message: expect.stringContaining('extra'),
    });
  });
});
