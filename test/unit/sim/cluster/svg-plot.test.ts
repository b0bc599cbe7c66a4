import { describe, expect, it } from 'vitest';
import { cdfPoints, lineChart, ticks } from '../../../../sim/cluster/svg-plot.ts';

describe('svg plots', () => {
  it('ticks are round steps covering the range', () => {
    expect(ticks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0.4, 1.2)).toEqual([0.4, 0.6, 0.8, 1, 1.2]);
    expect(ticks(3, 3)).toEqual([3]);
  });

  it('draws one line and one legend entry per series, escaping names', () => {
    const svg = lineChart({
      title: 'TTFT <p90>',
      xLabel: 'x',
      yLabel: 'y',
      series: [
        {
          name: 'a&b',
          points: [
            [1, 1],
            [2, 4],
          ],
        },
        {
          name: 'c',
          points: [
            [1, 2],
            [2, Number.NaN],
            [3, 3],
          ],
        },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('a&amp;b');
    expect(svg).toContain('TTFT &lt;p90&gt;');
    expect(svg).not.toContain('NaN');
  });

  it('a log axis puts decades at equal distances', () => {
    const svg = lineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      logX: true,
      series: [
        {
          name: 's',
          points: [
            [0.01, 0],
            [10, 1],
          ],
        },
      ],
    });
    for (const label of ['0.01', '0.1', '1', '10']) expect(svg).toContain(`>${label}</text>`);
  });

  it('a CDF ends at 1 and never decreases', () => {
    const pts = cdfPoints(
      Float64Array.from({ length: 1000 }, (_, i) => i / 10),
      50,
    );
    expect(pts.length).toBeLessThanOrEqual(52);
    expect(pts[pts.length - 1]).toEqual([99.9, 1]);
    expect(pts.every(([, y], i) => i === 0 || y >= (pts[i - 1] as [number, number])[1])).toBe(true);
  });
});
