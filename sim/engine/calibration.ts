/**
 * Finds and loads the calibration file for `--sim-calibration PATH` (a file, or the calibration directory, where
 * the file is chosen by the model size in the model name, the TP size and `--sim-gpu-type`): files are named
 * `llama-3.1-<size>-tp<tp>-<gpu>.json`. Other models / TP sizes take the nearest file of the same size (stated as
 * an approximation in the log).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CalibrationFile } from './model/latency-model.ts';

/** The measured costs beside the repository (`../shared/calibration`, see its README). */
export const CALIBRATION_DIR = join(import.meta.dirname, '../../../shared/calibration');

export function loadCalibration(
  path: string,
  model: string,
  tp: number,
  gpuType: string,
): { file: string; data: CalibrationFile } {
  let file = path;
  if (statSync(path).isDirectory()) {
    const size = /(\d+)[bB](?![a-zA-Z])/.exec(model)?.[1] ?? '8';
    const gpu = /h200/i.test(gpuType) ? 'h200' : 'h100';
    const all = readdirSync(path).filter((f) => /^llama-3\.1-\d+b-tp\d+-h\d+\.json$/.test(f));
    const score = (f: string) => {
      const m = /^llama-3\.1-(\d+)b-tp(\d+)-(h\d+)\.json$/.exec(f);
      if (!m) return Number.POSITIVE_INFINITY;
      return (
        (m[1] === size ? 0 : 1000) +
        (m[3] === gpu ? 0 : 100) +
        Math.abs(Math.log2(Number(m[2])) - Math.log2(tp))
      );
    };
    const best = all.sort((a, b) => score(a) - score(b))[0];
    if (!best) throw new Error(`no calibration files in ${path}`);
    file = join(path, best);
  }
  return { file, data: JSON.parse(readFileSync(file, 'utf8')) as CalibrationFile };
}
