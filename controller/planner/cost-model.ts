/**
 * A rough decode-speed ESTIMATE for ranking plans, from the GPU's datasheet bandwidths. It is not the calibrated
 * latency model (that is the engine simulator's, built on the measurements in calibration/); it only has to
 * order shapes sensibly.
 *
 * Decode is memory bound: each step every rank reads its weights once and the KV of every sequence in its batch.
 *   t_stage(b)    = (weights_per_gpu + b * c * kv_bytes_per_token_per_gpu) / (hbm_bandwidth * EFFICIENCY)
 *                 + 2 * layers_on_stage * allreduce(b * hidden * 2 bytes)        (two all-reduces per layer)
 *   allreduce(n)  = latency + 2 * (tp - 1) / tp * n / link_bandwidth               (ring all-reduce)
 *   hop(b)        = latency_inter + b * hidden * 2 / inter_node_bandwidth          (PP stage to stage)
 * With pp stages vLLM keeps pp micro-batches of B / pp sequences in flight, so every stage stays busy:
 *   time_per_output_token(B) = pp * (t_stage(B / pp) + hop(B / pp))
 *   throughput(B)            = B / time_per_output_token(B)
 * B is the batch the KV cache allows at c tokens of context each, capped by max_num_seqs.
 */

/**
 * Share of peak HBM bandwidth decode kernels reach. The calibration README measures ~3.0 TB/s device copies on
 * an H100 (3.35 TB/s peak); GEMV-shaped decode kernels get less. 0.75 puts this model within ~10% (31 ms) of the
 * calibration example (FP8 405B on H100, 64 sequences at 4k context: ~29 ms per step in kernels).
 */
export const HBM_EFFICIENCY = 0.75;
/** NCCL / vLLM custom all-reduce latency for small messages over NVLink: on the order of 10 microseconds. */
export const INTRA_NODE_LATENCY_S = 10e-6;

export interface InterNodeLink {
  /** Bytes/s per node, one direction. */
  readonly bandwidth: number;
  /** One message across nodes, seconds. */
  readonly latency: number;
}

/**
 * Without InfiniBand, nodes talk over TCP: 100 Gb/s Ethernet (12.5 GB/s) and ~50 microseconds per message,
 * typical datacenter figures. This is the case where vLLM measured TP16 6.6x slower than TP8 x PP2.
 */
export const DEFAULT_INTER_NODE: InterNodeLink = { bandwidth: 12.5e9, latency: 50e-6 };

export interface CostInput {
  readonly tp: number;
  readonly pp: number;
  readonly gpusPerNode: number;
  readonly hidden: number;
  readonly layersPerStage: number;
  readonly weightsPerGpu: number;
  readonly kvBytesPerTokenPerGpu: number;
  readonly hbmBandwidth: number;
  readonly intraNodeBandwidth: number;
  readonly interNode: InterNodeLink;
}

export interface DecodeEstimate {
  /** Time per output token of a lone sequence with a short context, ms. */
  readonly tpotBatch1Ms: number;
  /** Concurrent sequences assumed for throughput. */
  readonly batch: number;
  /** Time per output token at that batch, ms. */
  readonly tpotMs: number;
  /** Output tokens/s of the whole group at that batch. */
  readonly tokensPerSecond: number;
  readonly tokensPerSecondPerGpu: number;
}

function allReduce(c: CostInput, bytes: number): number {
  if (c.tp === 1) return 0;
  const crossNode = c.tp > c.gpusPerNode;
  // Across nodes the ring's data passes through each node's network link once per direction (NCCL reduces
  // inside the node over NVLink first), so the node link's bandwidth bounds the whole all-reduce.
  const bandwidth = crossNode ? c.interNode.bandwidth : c.intraNodeBandwidth;
  const latency = crossNode ? c.interNode.latency : INTRA_NODE_LATENCY_S;
  return latency + ((2 * (c.tp - 1)) / c.tp) * (bytes / bandwidth);
}

function stageSeconds(c: CostInput, batch: number, context: number): number {
  const read = c.weightsPerGpu + batch * context * c.kvBytesPerTokenPerGpu;
  const comm = 2 * c.layersPerStage * allReduce(c, batch * c.hidden * 2);
  return read / (c.hbmBandwidth * HBM_EFFICIENCY) + comm;
}

function hopSeconds(c: CostInput, batch: number): number {
  return c.pp > 1 ? c.interNode.latency + (batch * c.hidden * 2) / c.interNode.bandwidth : 0;
}

function tpotSeconds(c: CostInput, batch: number, context: number): number {
  const micro = Math.max(1, batch / c.pp);
  return c.pp * (stageSeconds(c, micro, context) + hopSeconds(c, micro));
}

export function estimateDecode(c: CostInput, batch: number, context: number): DecodeEstimate {
  const b = Math.max(1, Math.floor(batch));
  const tpot = tpotSeconds(c, b, context);
  const tokensPerSecond = b / tpot;
  return {
    tpotBatch1Ms: tpotSeconds(c, 1, 128) * 1000,
    batch: b,
    tpotMs: tpot * 1000,
    tokensPerSecond,
    tokensPerSecondPerGpu: tokensPerSecond / (c.tp * c.pp),
  };
}
