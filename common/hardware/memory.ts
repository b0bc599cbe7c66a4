/**
 * Per-GPU memory arithmetic of one vLLM rank: weights, runtime reserve, KV cache. Shared by the planner and the
 * engine simulator, so both size the KV cache the same way.
 *
 * vLLM's own formula (vllm/v1/worker/gpu_worker.py determine_available_memory, and kv_cache_utils):
 *   available_kv   = total_gpu_memory * gpu_memory_utilization - (weights + peak_activation + non_torch_memory)
 *   num_gpu_blocks = floor(available_kv / (block_size * kv_bytes_per_token_per_layer * layers_on_this_rank))
 *   kv_bytes_per_token_per_layer = 2 (K and V) * kv_heads_on_this_rank * head_dim * dtype_bytes
 *   kv_heads_on_this_rank = max(1, kv_heads / tp)   (KV heads are replicated when tp > kv_heads)
 *   max_concurrency(L) = num_gpu_blocks * block_size / L   (logged as "Maximum concurrency for L tokens")
 * Every rank of a group allocates the same number of blocks: the minimum over ranks (the fullest PP stage).
 *
 * Weights on one rank: the stage's layers / tp, plus embed_tokens on the first stage and lm_head + final norm on
 * the last (vLLM puts PPMissingLayer elsewhere); both are split over tp (vocab-parallel). Norms are replicated.
 */
import {
  embeddingParams,
  type Fp8Scheme,
  type LayerParams,
  layerParams,
  type ModelShape,
  type WeightDtype,
} from './model-shape.ts';

export type { Fp8Scheme };

export interface ShardSpec {
  readonly tp: number;
  readonly pp: number;
  readonly dtype: WeightDtype;
  readonly fp8Scheme: Fp8Scheme;
  /** `auto` in vLLM means the model's activation dtype, BF16 even for FP8 weights. */
  readonly kvCacheDtype: 'bf16' | 'fp8';
}

export const GiB = 1024 ** 3;
/** vLLM's default --block-size on CUDA. */
export const BLOCK_SIZE = 16;

const BYTES: Readonly<Record<WeightDtype, number>> = { bf16: 2, fp8: 1 };

/**
 * Layers per pipeline stage, as vLLM's get_pp_indices splits them: layers / pp each, and the remainder goes one
 * each to the stages before the last (the last already holds lm_head).
 */
export function stageLayers(layers: number, pp: number): number[] {
  const base = Math.floor(layers / pp);
  const parts = Array.from({ length: pp }, () => base);
  const rem = layers % pp;
  for (let i = 2; i < rem + 2; i++) parts[pp - i] = base + 1;
  return parts;
}

export function kvHeadsPerGpu(m: ModelShape, tp: number): number {
  return Math.max(1, Math.ceil(m.kvHeads / tp));
}

/** 2 * layers_on_this_stage * kv_heads_per_gpu * head_dim * bytes. */
export function kvBytesPerTokenPerGpu(
  m: ModelShape,
  layersOnStage: number,
  tp: number,
  kvDtype: 'bf16' | 'fp8',
): number {
  return 2 * layersOnStage * kvHeadsPerGpu(m, tp) * m.headDim * BYTES[kvDtype];
}

/** Bytes of one decoder layer on one TP rank, with the given dtypes for attention and MLP weights. */
function layerBytesPerGpu(m: ModelShape, tp: number, l: LayerParams, attn: number, mlp: number): number {
  const q = m.heads * m.headDim;
  const qoPerGpu = (2 * m.hidden * q) / tp;
  const kvPerGpu = 2 * m.hidden * kvHeadsPerGpu(m, tp) * m.headDim;
  return (qoPerGpu + kvPerGpu) * attn + (l.mlp / tp) * mlp + l.norms * 2;
}

/** Weight bytes on one GPU of pipeline stage `stage` (0-based). */
export function stageWeightBytesPerGpu(m: ModelShape, spec: ShardSpec, stage: number): number {
  const layers = stageLayers(m.layers, spec.pp);
  const first = layers.slice(0, stage).reduce((a, b) => a + b, 0);
  const count = layers[stage] ?? 0;
  const l = layerParams(m);
  let bytes = 0;
  for (let i = first; i < first + count; i++) {
    const edge = i === 0 || i === m.layers - 1;
    const fp8 = spec.dtype === 'fp8';
    const attn = fp8 && spec.fp8Scheme === 'all-linear' ? 1 : 2;
    const mlp = fp8 && (spec.fp8Scheme === 'all-linear' || !edge) ? 1 : 2;
    bytes += layerBytesPerGpu(m, spec.tp, l, attn, mlp);
  }
  const embedPerGpu = (embeddingParams(m) * 2) / spec.tp;
  if (stage === 0) bytes += embedPerGpu;
  if (stage === spec.pp - 1) {
    bytes += m.hidden * 2; // final norm
    // Tied embeddings share embed_tokens' tensor unless the last stage is another process.
    if (!m.tiedEmbeddings || spec.pp > 1) bytes += embedPerGpu;
  }
  return bytes;
}

/** vLLM profiles the memory before sizing the KV cache; these are our estimates of what it will find. */
export interface RuntimeReserve {
  /** Peak activation of the profiling forward pass (max_num_batched_tokens tokens) plus sampler logits. */
  readonly activation: number;
  /** CUDA context, cuBLAS workspaces and NCCL buffers: memory torch's allocator does not see. */
  readonly nonTorch: number;
  /** CUDA graphs captured after profiling. */
  readonly cudaGraphs: number;
  readonly total: number;
}

export interface ReserveOptions {
  readonly tp: number;
  readonly pp: number;
  /** vLLM defaults to 8192 on >= 70 GiB GPUs other than A100, else 2048 (VLLM.md). */
  readonly maxNumBatchedTokens: number;
  /** vLLM defaults to 1024 on >= 70 GiB GPUs other than A100, else 256. */
  readonly maxNumSeqs: number;
}

/**
 * Estimates, not measurements (there is no GPU here):
 * - activation: T tokens x (3 live hidden-size tensors (residual, normed input, attention output)
 *   + qkv output + gate_up output + MLP activation) x 2 bytes, and the sampler's fp32 logits over the full
 *   vocabulary for max_num_seqs rows (vLLM gathers logits before sampling). For 405B TP8 at 8192 tokens this is
 *   ~1.6 GiB, the order vLLM logs as "peak activation" for large models.
 * - nonTorch: 0.5 GiB of CUDA context and cuBLAS workspace, plus 0.5 GiB of NCCL buffers when the group has more
 *   than one rank: vLLM start-up logs typically show 0.5-1.5 GiB of non-torch memory.
 * - cudaGraphs: 1 GiB; vLLM logs "Graph capturing finished ... took 0.5-1.5 GiB" for large models. We take the
 *   upper half so a plan that fits here also fits on the GPU.
 */
export function runtimeReserve(m: ModelShape, o: ReserveOptions): RuntimeReserve {
  const q = m.heads * m.headDim;
  const kv = kvHeadsPerGpu(m, o.tp) * m.headDim;
  const perToken = 3 * m.hidden + q / o.tp + 2 * kv + (3 * m.intermediate) / o.tp;
  const activation = o.maxNumBatchedTokens * perToken * 2 + o.maxNumSeqs * m.vocab * 4;
  const nonTorch = 0.5 * GiB + (o.tp * o.pp > 1 ? 0.5 * GiB : 0);
  const cudaGraphs = 1 * GiB;
  return { activation, nonTorch, cudaGraphs, total: activation + nonTorch + cudaGraphs };
}

export interface KvCapacityInput {
  readonly totalGpuMemory: number;
  readonly gpuMemoryUtilization: number;
  readonly weights: number;
  readonly reserve: number;
  /** 2 * kv_heads_on_this_rank * head_dim * dtype_bytes. */
  readonly kvBytesPerTokenPerLayer: number;
  readonly layersOnRank: number;
  readonly blockSize?: number;
}

export interface KvCapacity {
  readonly usable: number;
  /** May be negative: the shortfall when weights and reserve exceed the usable memory. */
  readonly kvCacheBytes: number;
  readonly blocks: number;
  readonly tokens: number;
}

/** vLLM's formula (see the file comment), for one rank. */
export function kvCapacity(i: KvCapacityInput): KvCapacity {
  const blockSize = i.blockSize ?? BLOCK_SIZE;
  const usable = i.totalGpuMemory * i.gpuMemoryUtilization;
  const kvCacheBytes = usable - (i.weights + i.reserve);
  const perBlock = blockSize * i.kvBytesPerTokenPerLayer * i.layersOnRank;
  const blocks = kvCacheBytes > 0 && perBlock > 0 ? Math.floor(kvCacheBytes / perBlock) : 0;
  return { usable, kvCacheBytes, blocks, tokens: blocks * blockSize };
}

/** How many sequences of `contextTokens` fit in the KV cache at once (vLLM's "Maximum concurrency"). */
export function maxConcurrency(kvTokens: number, contextTokens: number): number {
  return contextTokens > 0 ? kvTokens / contextTokens : 0;
}
