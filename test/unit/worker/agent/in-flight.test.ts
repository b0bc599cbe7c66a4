import { describe, expect, it } from 'vitest';
import { InFlight } from '../../../../worker/agent/in-flight.ts';

describe('InFlight', () => {
  it('counts calls and refuses new ones once closed', () => {
    const f = new InFlight();
    const a = f.enter();
    const b = f.enter();
    expect(f.size).toBe(2);
    f.close();
    expect(f.accepting).toBe(false);
    expect(f.enter()).toBeUndefined();
    a?.();
    a?.(); // releasing twice counts once
    expect(f.size).toBe(1);
    b?.();
    expect(f.size).toBe(0);
  });

  it('resolves idle() when the last call leaves', async () => {
    const f = new InFlight();
    const release = f.enter();
    const idle = f.idle(60_000);
    release?.();
    expect(await idle).toBe(true);
    expect(await f.idle(0)).toBe(true);
  });

  it('resolves idle() false when the timeout passes first', async () => {
    const f = new InFlight();
    f.enter();
    expect(await f.idle(1)).toBe(false);
  });
});
