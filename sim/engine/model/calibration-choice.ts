/**
 * Which calibration file times a simulated engine, and how it is scaled to the engine's shape (pure: the caller
 * reads the files and passes them in). Files are named `llama-3.1-<size>b-tp<tp>-<gpu>.json` and hold one TP rank's kernel
 * costs (sim/engine/calibration/README.md). A Llama model whose size has a file gets the calibrated model:
 *   - GPU: the file of that GPU, else the file whose GPU has the nearest HBM bandwidth, every kernel scaled by
 *     bandwidth(file's GPU) / bandwidth(engine's GPU) (decode is memory bound; the fidelity bench times MI300X
 *     this way);
 *   - TP: the file of that TP size, else the nearest one, scaled by what one rank holds: GEMM weights and the LM
 *     head are split over TP (x fileTp/tp), prefill attention by query heads (x fileTp/tp), decode attention by
 *     KV heads per rank (KV heads are replicated once TP exceeds them, so it stops shrinking there).
 * PP needs no other file: the latency model runs the layers of a stage (latency-model.ts).
 * A model with no file of its size (not Llama, or a size never measured) has no calibrated model.
 */
import { GPU_TYPES, type GpuType, lookupGpu } from '../../../common/hardware/gpu-catalog.ts';
import type { CalibrationFile } from './latency-model.ts';

export interface CalibrationName {
  file: string;
  /** Billions of parameters. */
  size: number;
  tp: number;
  gpu: GpuType;
}

export interface CalibrationWanted {
  model: string;
  tp: number;
  gpuType: string;
}

export interface CalibrationScale {
  /** Every kernel (a GPU of another memory bandwidth). */
  gpu: number;
  /** GEMMs, LM head and prefill attention (weights and query heads split over another TP size). */
  tpCompute: number;
  /** Decode attention (KV heads per rank at another TP size). */
  tpDecodeAttn: number;
}

/** The measured costs as they are. */
export const UNSCALED: Readonly<CalibrationScale> = { gpu: 1, tpCompute: 1, tpDecodeAttn: 1 };

export interface CalibrationEntry {
  /** The file's name, e.g. llama-3.1-405b-tp8-h100.json. */
  file: string;
  data: CalibrationFile;
}

export type CalibrationChoice =
  | {
      kind: 'calibrated';
      file: string;
      /** The file's costs scaled to the engine's GPU and TP size. */
      data: CalibrationFile;
      scale: CalibrationScale;
      approximations: string[];
    }
  | { kind: 'none'; reason: string };

const NAME = /^llama-3\.1-(\d+)b-tp(\d+)-([a-z0-9]+)\.json$/;

/** The GPU a file's short name (h100, h200) stands for: the catalog type whose id starts with it. */
function gpuOfShortName(short: string): GpuType | undefined {
  return GPU_TYPES.find((g) => g.id === short || g.id.startsWith(`${short}-`));
}

export function parseCalibrationName(file: string): CalibrationName | undefined {
  const m = NAME.exec(file);
  const gpu = m ? gpuOfShortName(m[3] ?? '') : undefined;
  if (!m || !gpu) return undefined;
  return { file, size: Number(m[1]), tp: Number(m[2]), gpu };
}

/** The parameter count a Llama model name states, in billions (`Meta-Llama-3.1-405B-Instruct-FP8` -> 405). */
export function llamaSizeOf(model: string): number | undefined {
  if (!/llama/i.test(model)) return undefined;
  const m = /(\d+)[bB](?![a-zA-Z])/.exec(model);
  return m ? Number(m[1]) : undefined;
}

/** KV heads one rank attends over: split over TP, replicated once TP exceeds them. */
function kvHeadsPerRank(kvHeads: number, tp: number): number {
  return Math.max(1, kvHeads / tp);
}

export function chooseCalibration(
  available: readonly CalibrationEntry[],
  want: CalibrationWanted,
): CalibrationChoice {
  const size = llamaSizeOf(want.model);
  if (size === undefined) return { kind: 'none', reason: `${want.model} names no Llama 3.1 size` };
  const gpu = lookupGpu(want.gpuType);
  if (gpu === null) return { kind: 'none', reason: `unknown GPU type ${want.gpuType}` };
  const ofSize = available
    .flatMap((e) => {
      const name = parseCalibrationName(e.file);
      return name ? [{ ...name, data: e.data }] : [];
    })
    .filter((c) => c.size === size);
  if (ofSize.length === 0) return { kind: 'none', reason: `no calibration file for Llama 3.1 ${size}B` };
  const bandwidthGap = (c: CalibrationName) =>
    Math.abs(Math.log(c.gpu.memoryBandwidth / gpu.memoryBandwidth));
  const tpGap = (c: CalibrationName) => Math.abs(Math.log2(c.tp) - Math.log2(want.tp));
  const best = [...ofSize].sort(
    (a, b) => bandwidthGap(a) - bandwidthGap(b) || tpGap(a) - tpGap(b) || a.file.localeCompare(b.file),
  )[0] as CalibrationName & CalibrationEntry;
  const approximations: string[] = [];
  const scale: CalibrationScale = { ...UNSCALED };
  if (best.gpu.id !== gpu.id) {
    scale.gpu = best.gpu.memoryBandwidth / gpu.memoryBandwidth;
    approximations.push(
      `${gpu.name} not measured: ${best.gpu.name} kernels x ${scale.gpu.toFixed(3)} (HBM bandwidth ratio)`,
    );
  }
  if (best.tp !== want.tp) {
    const heads = best.data.model.kv_heads;
    scale.tpCompute = best.tp / want.tp;
    scale.tpDecodeAttn = kvHeadsPerRank(heads, want.tp) / kvHeadsPerRank(heads, best.tp);
    approximations.push(
      `TP${want.tp} not measured: TP${best.tp} per-rank costs x ${scale.tpCompute.toFixed(3)} (GEMMs, LM head, prefill attention), x ${scale.tpDecodeAttn.toFixed(3)} (decode attention)`,
    );
  }
  return {
    kind: 'calibrated',
    file: best.file,
    data: scaleCalibration(best.data, scale),
    scale,
    approximations,
  };
}

function times(table: Record<string, number>, factor: number): Record<string, number> {
  return Object.fromEntries(Object.entries(table).map(([k, v]) => [k, v * factor]));
}

/** The file's kernel costs scaled to another GPU / TP size (factors of 1 return it unchanged). */
export function scaleCalibration(cal: CalibrationFile, s: CalibrationScale): CalibrationFile {
  if (s.gpu === 1 && s.tpCompute === 1 && s.tpDecodeAttn === 1) return cal;
  const compute = s.gpu * s.tpCompute;
  const g = cal.layer_gemms_ms_per_rank;
  return {
    ...cal,
    layer_gemms_ms_per_rank: {
      bf16: times(g.bf16, compute),
      fp8: times(g.fp8, compute),
      lm_head_bf16: times(g.lm_head_bf16, compute),
    },
    decode_attn_ms_per_layer_rank: times(cal.decode_attn_ms_per_layer_rank, s.gpu * s.tpDecodeAttn),
    prefill_attn_ms_per_layer_rank: times(cal.prefill_attn_ms_per_layer_rank, compute),
  };
}
