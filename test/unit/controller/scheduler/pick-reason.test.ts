import { describe, expect, it } from 'vitest';
import { thousands } from '../../../../controller/scheduler/pick.ts';
import { reasonKind } from '../../../../controller/scheduler/pick-reason.ts';
import { seededRandom } from '../../../../sim/cluster/random.ts';

/** The definition reasonKind's scan replaces. */
const byRegExp = (reason: string) => /^[a-z][a-z ]*[a-z]/i.exec(reason)?.[0] ?? reason;

describe('reasonKind', () => {
  it("names pick's reasons by their leading words", () => {
    expect(reasonKind('prefix hit 8,000 tokens on g3; outstanding 4 (mean 3.2)')).toBe('prefix hit');
    expect(reasonKind('imbalance guard: g1 holds 8,000 tokens but has 9 outstanding (limit 6)')).toBe(
      'imbalance guard',
    );
    expect(reasonKind('least outstanding (0) among 3 tied of 8 ready')).toBe('least outstanding');
    expect(reasonKind('round robin')).toBe('round robin');
  });

  it('agrees with /^[a-z][a-z ]*[a-z]/i on edge cases and random strings', () => {
    const cases = [
      '',
      'a',
      'ab',
      'a ',
      ' a',
      'a b',
      'a  b ',
      'A b:c',
      '1abc',
      'ab1',
      'Zz`{@[',
      'a\tb',
      'é ab',
    ];
    for (const c of cases) expect(reasonKind(c), JSON.stringify(c)).toBe(byRegExp(c));
    const random = seededRandom(3);
    const alphabet = 'aZz @[`{ 09:;(,\u00e9';
    for (let i = 0; i < 2000; i++) {
      let s = '';
      const n = Math.floor(random() * 8);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(random() * alphabet.length)];
      expect(reasonKind(s), JSON.stringify(s)).toBe(byRegExp(s));
    }
  });
});

describe('thousands', () => {
  it('writes a rounded number as the regular expression it replaces did (commas between thousands)', () => {
    const byRegExp = (n: number) => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const cases = [
      0,
      -0,
      7,
      999,
      999.6,
      1000,
      5632,
      -5632,
      12_345,
      123_456,
      1_234_567.4,
      -1_000_000,
      2 ** 53,
      1e21,
    ];
    for (const n of [...cases, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e25, -3e22])
      expect(thousands(n), String(n)).toBe(byRegExp(n));
    expect(thousands(8000)).toBe('8,000');
    const random = seededRandom(8);
    for (let i = 0; i < 2000; i++) {
      const n = (random() - 0.3) * 10 ** Math.floor(random() * 18);
      expect(thousands(n), String(n)).toBe(byRegExp(n));
    }
  });
});
