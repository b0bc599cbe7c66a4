/**
 * The shape of a decoder-only transformer (Llama style: GQA attention + gated MLP), enough to size its weights
 * and its KV cache, and the built-in Llama 3.1 family.
 *
 * Parameter count, from the shape (Llama layout: q/k/v/o projections, gate/up/down MLP, two RMSNorms per layer):
 *   per_layer = hidden * (heads * head_dim)            q_proj
 *             + 2 * hidden * (kv_heads * head_dim)     k_proj, v_proj
 *             + (heads * head_dim) * hidden            o_proj
 *             + 3 * hidden * intermediate              gate_proj, up_proj, down_proj
 *             + 2 * hidden                             input and post-attention RMSNorm
 *   total     = layers * per_layer + vocab * hidden (embed_tokens) + hidden (final norm)
 *             + (tied ? 0 : vocab * hidden) (lm_head)
 * For Llama 3.1 405B this gives 405.85 B, the figure in VLLM.md and Meta's model card.
 */

export type WeightDtype = 'bf16' | 'fp8';

/**
 * Which weights are FP8 under `dtype: 'fp8'`:
 * - `meta`: Meta's published FP8 405B (fbgemm_fp8). The Llama 3 paper (Dubey et al. 2024, sec. 6.2) quantizes
 *   the feed-forward weights only, leaves self-attention in BF16, and skips the first and last transformer
 *   layers; embeddings and lm_head stay BF16. 405B then weighs ~487 GB.
 * - `all-linear`: vLLM's `--quantization fp8` on a BF16 checkpoint quantizes every linear layer of every decoder
 *   layer (qkv, o, gate_up, down) on load; embeddings and lm_head stay BF16. 405B then weighs ~410 GB.
 */
export type Fp8Scheme = 'meta' | 'all-linear';

export interface ModelShape {
  /** Short id, e.g. `llama-3.1-405b`. */
  readonly id: string;
  readonly layers: number;
  readonly hidden: number;
  readonly intermediate: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly maxPositions: number;
  readonly tiedEmbeddings: boolean;
}

/** Weights of one decoder layer, split by the part FP8 schemes treat differently. */
export interface LayerParams {
  readonly attention: number;
  readonly mlp: number;
  readonly norms: number;
}

export function layerParams(m: ModelShape): LayerParams {
  const q = m.heads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  return {
    attention: m.hidden * q + 2 * m.hidden * kv + q * m.hidden,
    mlp: 3 * m.hidden * m.intermediate,
    norms: 2 * m.hidden,
  };
}

export function embeddingParams(m: ModelShape): number {
  return m.vocab * m.hidden;
}

export function parameterCount(m: ModelShape): number {
  const l = layerParams(m);
  const embed = embeddingParams(m);
  return m.layers * (l.attention + l.mlp + l.norms) + embed + m.hidden + (m.tiedEmbeddings ? 0 : embed);
}

const llama31 = (
  id: string,
  layers: number,
  hidden: number,
  intermediate: number,
  heads: number,
): ModelShape => ({
  id,
  layers,
  hidden,
  intermediate,
  heads,
  kvHeads: 8,
  headDim: 128,
  vocab: 128256,
  maxPositions: 131072,
  tiedEmbeddings: false,
});

/** Llama 3.1 shapes from each model's config.json on Hugging Face (meta-llama/Llama-3.1-{8B,70B,405B}). */
export const BUILTIN_MODELS: Readonly<Record<string, ModelShape>> = {
  'llama-3.1-8b': llama31('llama-3.1-8b', 32, 4096, 14336, 32),
  'llama-3.1-70b': llama31('llama-3.1-70b', 80, 8192, 28672, 64),
  'llama-3.1-405b': llama31('llama-3.1-405b', 126, 16384, 53248, 128),
};

/** What a model id names: a shape, and whether the checkpoint on disk is already FP8. */
export interface ModelRef {
  readonly shape: ModelShape;
  /** The name as given (a Hugging Face repo or a short id); vLLM is launched with it. */
  readonly name: string;
  /**
   * Set for checkpoints published already quantized (Meta's `-FP8` repos): vLLM reads the scheme from the
   * checkpoint's quantization_config, so `--quantization fp8` must not be passed.
   */
  readonly preQuantized: WeightDtype | null;
  /** Which layers are FP8 when the weights are FP8; default `meta` if pre-quantized, else `all-linear`. */
  readonly fp8Scheme?: Fp8Scheme;
}

/**
 * Accepts `llama-3.1-405b`, `llama-3.1-405b-instruct`, `meta-llama/Llama-3.1-405B-Instruct` and
 * `meta-llama/Meta-Llama-3.1-405B-Instruct-FP8` (Meta's published FP8 repo; the suffix implies fp8).
 * Returns null for names that are not built in (the caller then needs a config.json).
 */
export function resolveBuiltinModel(name: string): ModelRef | null {
  let key = name.trim().toLowerCase();
  const slash = key.lastIndexOf('/');
  if (slash >= 0) key = key.slice(slash + 1);
  let preQuantized: WeightDtype | null = null;
  if (key.endsWith('-fp8')) {
    preQuantized = 'fp8';
    key = key.slice(0, -'-fp8'.length);
  }
  key = key.replace(/^meta-/, '').replace(/-instruct$/, '');
  const shape = BUILTIN_MODELS[key];
  return shape ? { shape, name, preQuantized } : null;
}
