/** A small simulated cluster for unit tests: the real engine model and latency model, tiny KV caches. */
import type { GroupShape } from '../../../../sim/cluster/engine-group.ts';
import type { Workload } from '../../../../sim/cluster/workload.ts';
import { multiTurn } from '../../../../sim/cluster/workloads/multi-turn.ts';
import { sharedPrefix } from '../../../../sim/cluster/workloads/shared-prefix.ts';
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

/**
 * Long answers on SMALL caches: running requests outgrow the KV cache and are preempted and recomputed over
 * their answers' blocks. With a question of 47 tokens the prompt's last block straddles into the answer.
 */
export function crowdedWorkload(durationS: number, questionTokens: number): Workload {
  return sharedPrefix({
    tenants: 6,
    prefixTokens: 1600,
    usersPerTenant: 2,
    questionTokens,
    outputTokens: { min: 100, max: 400 },
    arrivals: { ratePerS: 6, durationS, rampS: 5 },
    seed: 5,
  });
}

/** Later turns quote earlier answers: their prefix hits need the answers' blocks hashed as the engines would. */
export function chatWorkload(durationS: number): Workload {
  return multiTurn({
    conversations: { ratePerS: 2, durationS, rampS: 5 },
    systemTokens: 300,
    turns: { min: 3, max: 6 },
    userTokens: { min: 20, max: 80 },
    outputTokens: { min: 40, max: 200 },
    thinkS: 2,
    seed: 6,
  });
}
