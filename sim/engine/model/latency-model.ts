/**
 * Step time of a simulated engine from measured per-GPU kernel costs (sim/engine/calibration/data/*.json, one TP
 * rank): a step's time is, per pipeline stage, layers x (the four GEMMs over all tokens in the step + decode
 * attention + prefill attention) + the LM head + the tensor-parallel all-reduces, all on the slowest rank.
 * Measured points are interpolated on log-log axes. Decode attention of B sequences is read at their MEAN context
 * (the kernel is memory bound, ~linear in B x C, so this equals the sum over sequences without counting the
 * batch-1 launch floor B times).
 *
 * Not measured, so parameters (stated, with defaults from outside facts):
 *   - all-reduce: 2 per layer under TP (after attention and after the MLP), each a fixed latency plus a ring
 *     all-reduce's bytes, 2 x (TP-1)/TP x tokens x hidden x 2 bytes, over the link (NVLink 4: 900 GB/s per GPU
 *     spec; ~450 GB/s per direction is what a ring sees);
 *   - PP: a step crosses every stage in turn (one micro-batch in flight for a given sequence), plus one hop per
 *     stage boundary;
 *   - the CPU-side gap between kernels and what vLLM delivers:
 *     step = kernels / gpuEfficiency + stepOverheadMs + sequences in the step x seqOverheadUs.
 */

export interface CalibrationFile {
  tp: number;
  model: { hidden: number; layers: number; kv_heads: number };
  layer_gemms_ms_per_rank: {
    bf16: Record<string, number>;
    fp8: Record<string, number>;
    lm_head_bf16: Record<string, number>;
  };
  decode_attn_ms_per_layer_rank: Record<string, number>;
  prefill_attn_ms_per_layer_rank: Record<string, number>;
}

export interface LatencyParams {
  tp: number;
  pp: number;
  fp8: boolean;
  /** Fixed latency of one all-reduce (NCCL small-message latency within a node, ~10-20 us). */
  allReduceLatencyUs: number;
  /** Link bandwidth one direction, GB/s, for the all-reduce bytes. */
  linkGBps: number;
  /** Per stage boundary under PP (cross-node send of the activations). */
  ppHopMs: number;
  /** Fraction of kernel speed vLLM achieves end to end (<= 1). */
  gpuEfficiency: number;
  /** CPU-side time per step: scheduling, sampling, output processing. */
  stepOverheadMs: number;
  /**
   * CPU-side time per sequence in the step, in microseconds: vLLM's scheduler, sampler and detokenizer touch
   * every running sequence every step, so this part of the gap grows with the batch.
   */
  seqOverheadUs: number;
}

/**
 * gpuEfficiency, stepOverheadMs and seqOverheadUs are fitted jointly by `npm run bench:sim-fidelity` on published
 * vLLM operating points (405B FP8 on 8xH100 at 2.82 req/s, 8B on one H100 at 13 ms per token, 405B FP8 on
 * 8xMI300X at batch 1 and 256); on the held-out points (MI300X at batch 8 to 128, Lambda's 405B FP8 ShareGPT run
 * on 8xH100) the error is within 17% (2026-11-27 run). Those points were measured on vLLM 0.5.x, whose CPU side
 * was slower than today's; the defaults err on the slow side.
 */
export const DEFAULT_LATENCY_PARAMS: Omit<LatencyParams, 'tp' | 'pp' | 'fp8'> = {
  allReduceLatencyUs: 15,
  linkGBps: 450,
  ppHopMs: 0.5,
  gpuEfficiency: 0.55,
  stepOverheadMs: 0,
  seqOverheadUs: 75,
};

type Points = [number, number][];

function points(table: Record<string, number>): Points {
  return Object.entries(table)
    .map(([k, v]): [number, number] => [Number(k), v])
    .filter(([k, v]) => k > 0 && v > 0)
    .sort((a, b) => a[0] - b[0]);
}

/** Log-log interpolation, extrapolating the end segments; x <= 0 costs nothing. */
export function logLog(pts: Points, x: number): number {
  if (x <= 0 || pts.length === 0) return 0;
  if (pts.length === 1) return (pts[0]?.[1] ?? 0) * (x / (pts[0]?.[0] ?? 1));
  const i = segmentEnd(pts, x);
  const [x0, y0] = pts[i - 1] as [number, number];
  const [x1, y1] = pts[i] as [number, number];
  return between(x0, y0, x1, y1, x);
}

/** The index of the point that ends x's segment (the first at or after x; the end segments extrapolate). */
function segmentEnd(pts: readonly (readonly [number, unknown])[], x: number): number {
  let i = 0;
  while (i < pts.length && (pts[i] as readonly [number, unknown])[0] < x) i++;
  if (i === 0) return 1;
  return i === pts.length ? pts.length - 1 : i;
}

function between(x0: number, y0: number, x1: number, y1: number, x: number): number {
  const t = (Math.log(x) - Math.log(x0)) / (Math.log(x1) - Math.log(x0));
  return Math.exp(Math.log(y0) + t * (Math.log(y1) - Math.log(y0)));
}

/**
 * Token counts and batch sizes below this are memoised: a simulator asks for the same few hundred again at every
 * step, and each interpolation costs logarithms and an exponential (the same values, computed once).
 */
const MEMO_LIMIT = 16_384;

/** Values of `f` at integers in [0, MEMO_LIMIT), each computed once (its table grows to what is asked). */
class IntegerMemo {
  private values = new Float64Array(0);

  constructor(private readonly f: (x: number) => number) {}

  at(x: number): number {
    if (!(x < this.values.length && Number.isInteger(x) && x >= 0)) {
      if (!(Number.isInteger(x) && x >= 0 && x < MEMO_LIMIT)) return this.f(x);
      this.grow(x);
    }
    let v = this.values[x] as number;
    if (Number.isNaN(v)) {
      v = this.f(x);
      this.values[x] = v;
    }
    return v;
  }

  private grow(x: number): void {
    const grown = new Float64Array(Math.min(MEMO_LIMIT, 2 ** Math.ceil(Math.log2(x + 1)))).fill(Number.NaN);
    grown.set(this.values);
    this.values = grown;
  }
}

export class LatencyModel {
  private readonly gemm: IntegerMemo;
  private readonly lmHead: IntegerMemo;
  private readonly prefillAttn: IntegerMemo;
  /** Decode attention: per context length, a curve over batch size. */
  private readonly decodeByContext: [number, IntegerMemo][];
  private readonly layersPerStage: number;

  constructor(
    private readonly cal: CalibrationFile,
    readonly params: LatencyParams,
  ) {
    const g = cal.layer_gemms_ms_per_rank;
    const curve = (pts: Points) => new IntegerMemo((x) => logLog(pts, x));
    this.gemm = curve(points(params.fp8 ? g.fp8 : g.bf16));
    this.lmHead = curve(points(g.lm_head_bf16));
    this.prefillAttn = curve(points(cal.prefill_attn_ms_per_layer_rank));
    const byC = new Map<number, Record<string, number>>();
    for (const [k, v] of Object.entries(cal.decode_attn_ms_per_layer_rank)) {
      const m = /^B(\d+)_C(\d+)$/.exec(k);
      if (!m) continue;
      const c = Number(m[2]);
      byC.set(c, { ...byC.get(c), [m[1] ?? '0']: v });
    }
    this.decodeByContext = [...byC.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([c, t]) => [c, curve(points(t))]);
    this.layersPerStage = Math.ceil(cal.model.layers / params.pp);
  }

  /**
   * logLog over the points (context, logLog(that context's curve, batch)), reading only the two curves it
   * interpolates between: it runs every step, and building every point each time was most of its cost.
   */
  decodeAttnMs(batch: number, meanContext: number): number {
    const byC = this.decodeByContext;
    if (batch <= 0 || byC.length === 0) return 0;
    const x = Math.max(1, meanContext);
    const [c0, curve0] = byC[0] as [number, IntegerMemo];
    if (byC.length === 1) return curve0.at(batch) * (x / c0);
    const i = segmentEnd(byC, x);
    const [x0, curveBelow] = byC[i - 1] as [number, IntegerMemo];
    const [x1, curveAbove] = byC[i] as [number, IntegerMemo];
    return between(x0, curveBelow.at(batch), x1, curveAbove.at(batch), x);
  }

  /** The kernel time of one step on one rank of one stage, all-reduces included. */
  kernelMs(decodeSeqs: number, meanContext: number, prefillTokens: number): number {
    const tokens = decodeSeqs + prefillTokens;
    if (tokens === 0) return 0;
    const perLayer =
      this.gemm.at(tokens) + this.decodeAttnMs(decodeSeqs, meanContext) + this.prefillAttn.at(prefillTokens);
    const p = this.params;
    const bytes = p.tp > 1 ? (2 * (p.tp - 1) * tokens * this.cal.model.hidden * 2) / p.tp : 0;
    const allReduce = p.tp > 1 ? 2 * (p.allReduceLatencyUs / 1000 + bytes / (p.linkGBps * 1e6)) : 0;
    // The LM head runs for the sequences that sample a token this step: every decode and a finishing prefill.
    return this.layersPerStage * (perLayer + allReduce) + this.lmHead.at(Math.max(1, decodeSeqs));
  }

  /** Wall time of one engine step: every PP stage in turn, hops, efficiency and CPU overhead. */
  stepMs(decodeSeqs: number, meanContext: number, prefillTokens: number): number {
    const p = this.params;
    const kernels = p.pp * this.kernelMs(decodeSeqs, meanContext, prefillTokens) + (p.pp - 1) * p.ppHopMs;
    const seqs = decodeSeqs + (prefillTokens > 0 ? 1 : 0);
    return kernels / p.gpuEfficiency + p.stepOverheadMs + (seqs * p.seqOverheadUs) / 1000;
  }
}
