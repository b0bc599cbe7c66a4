/** A small simulated cluster for unit tests: the real engine model and latency model, tiny KV caches. */
import type { GroupShape } from '../../../../sim/cluster/engine-group.ts';
import { CALIBRATION_DIR, loadCalibration } from '../../../../sim/engine/calibration.ts';
import { DEFAULT_LATENCY_PARAMS, LatencyModel } from '../../../../sim/engine/model/latency-model.ts';

export const latency = new LatencyModel(
  loadCalibration(CALIBRATION_DIR, 'llama-3.1-405b', 8, 'h100-80g').data,
  {
    tp: 8,
    pp: 1,
    fp8: true,
    ...DEFAULT_LATENCY_PARAMS,
  },
);

/** 400 blocks = 6,400 tokens of KV per group. */
export const SMALL: GroupShape = {
  numBlocks: 400,
  maxNumSeqs: 64,
  maxNumBatchedTokens: 2048,
  maxModelLen: 8192,
};
