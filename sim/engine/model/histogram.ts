/** A Prometheus histogram with fixed buckets (cumulative counts rendered in text exposition format). */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++)
      if (v <= (this.buckets[i] ?? 0)) this.counts[i] = (this.counts[i] ?? 0) + 1;
  }

  get total(): number {
    return this.count;
  }

  /** Sum of the observed values (the _sum series). */
  get sumSeconds(): number {
    return this.sum;
  }

  render(labels: string): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => {
      lines.push(
        `${this.name}_bucket{${labels},le="${Number.isInteger(b) ? b.toFixed(1) : String(b)}"} ${this.counts[i]}`,
      );
    });
    lines.push(`${this.name}_bucket{${labels},le="+Inf"} ${this.count}`);
    lines.push(`${this.name}_sum{${labels}} ${this.sum}`, `${this.name}_count{${labels}} ${this.count}`);
    return lines.join('\n');
  }
}

// Bucket lists of vLLM's V1 metrics (vllm/v1/metrics/loggers.py), as listed in VLLM.md.
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
export const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];
