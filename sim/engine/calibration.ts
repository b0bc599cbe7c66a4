/**
 * Reads the calibration files (the I/O edge of model/calibration-choice.ts). The measured costs ship with the
 * repository in calibration/data/ (copied from the shared calibration folder; calibration/README.md says how they
 * were made), so the simulator is calibrated by default on a fresh clone. `--sim-calibration PATH` names another
 * directory, or one file used as measured, unscaled.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  type CalibrationChoice,
  type CalibrationEntry,
  type CalibrationWanted,
  chooseCalibration,
  parseCalibrationName,
  UNSCALED,
} from './model/calibration-choice.ts';
import type { CalibrationFile } from './model/latency-model.ts';

/** The measured costs vendored in the repository. */
export const CALIBRATION_DIR = join(import.meta.dirname, 'calibration', 'data');

/** The tables the latency model reads; a file without them is refused by name rather than crashing later. */
const REQUIRED = [
  'model',
  'layer_gemms_ms_per_rank',
  'decode_attn_ms_per_layer_rank',
  'prefill_attn_ms_per_layer_rank',
] as const;

function readEntry(path: string): CalibrationEntry {
  const data = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const missing = REQUIRED.filter((k) => typeof data[k] !== 'object' || data[k] === null);
  if (missing.length > 0) throw new Error(`${path} is not a calibration file: no ${missing.join(', ')}`);
  return { file: basename(path), data: data as unknown as CalibrationFile };
}

/** The directory's files named like calibration files (llama-3.1-<size>b-tp<tp>-<gpu>.json). */
function readDir(dir: string): CalibrationEntry[] {
  return readdirSync(dir)
    .filter((f) => parseCalibrationName(f) !== undefined)
    .sort()
    .map((f) => readEntry(join(dir, f)));
}

/**
 * The calibration for an engine: from `path` (a directory, default the vendored one; or a file), chosen and
 * scaled for the model, TP size and GPU. Throws when the path cannot be read.
 */
export function resolveCalibration(want: CalibrationWanted, path = CALIBRATION_DIR): CalibrationChoice {
  if (!statSync(path).isDirectory()) {
    const { file, data } = readEntry(path);
    return { kind: 'calibrated', file, data, scale: UNSCALED, approximations: [] };
  }
  return chooseCalibration(readDir(path), want);
}

/**
 * The costs for a model, TP size and GPU from `path` (a directory or one file), for benches and tests that need
 * them; throws when there are none.
 */
export function loadCalibration(
  path: string,
  model: string,
  tp: number,
  gpuType: string,
): { file: string; data: CalibrationFile } {
  const c = resolveCalibration({ model, tp, gpuType }, path);
  if (c.kind === 'none') throw new Error(`no calibration for ${model} TP${tp} on ${gpuType}: ${c.reason}`);
  return { file: c.file, data: c.data };
}
