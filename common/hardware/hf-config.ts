/**
 * Parses a Hugging Face `config.json` (transformers' LlamaConfig field names, shared by most decoder-only
 * models) into a ModelShape. Errors come back as values, each with the path of the offending field.
 */
import { err, type FieldError, ok, type Result } from '../errors.ts';
import type { Fp8Scheme, ModelShape, WeightDtype } from './model-shape.ts';

export interface HfModel {
  readonly shape: ModelShape;
  /** From `torch_dtype` (or `quantization_config`): the dtype of the checkpoint on disk. */
  readonly checkpointDtype: WeightDtype;
  /** For FP8 checkpoints: fbgemm_fp8 is Meta's scheme, vLLM's own `fp8` format quantizes every linear layer. */
  readonly fp8Scheme: Fp8Scheme;
}

function positiveInt(
  raw: Record<string, unknown>,
  key: string,
  errors: FieldError[],
  fallback?: number,
): number {
  const v = raw[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    errors.push({
      path: key,
      message: v === undefined ? 'required' : `must be a positive integer, got ${JSON.stringify(v)}`,
    });
    return 0;
  }
  return v;
}

/** `id` names the model in plans and errors (e.g. the directory or repo the config came from). */
export function parseHfConfig(id: string, json: unknown): Result<HfModel> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return err([{ path: '', message: 'must be a JSON object' }]);
  }
  const raw = json as Record<string, unknown>;
  const errors: FieldError[] = [];
  const layers = positiveInt(raw, 'num_hidden_layers', errors);
  const hidden = positiveInt(raw, 'hidden_size', errors);
  const intermediate = positiveInt(raw, 'intermediate_size', errors);
  const heads = positiveInt(raw, 'num_attention_heads', errors);
  // Models without GQA (Llama 2 7B) omit num_key_value_heads: transformers then uses one KV head per query head.
  const kvHeads = positiveInt(raw, 'num_key_value_heads', errors, heads);
  const headDim = positiveInt(
    raw,
    'head_dim',
    errors,
    heads > 0 && hidden % heads === 0 ? hidden / heads : undefined,
  );
  const vocab = positiveInt(raw, 'vocab_size', errors);
  const maxPositions = positiveInt(raw, 'max_position_embeddings', errors);

  if (heads > 0 && kvHeads > 0 && heads % kvHeads !== 0) {
    errors.push({ path: 'num_key_value_heads', message: `must divide num_attention_heads (${heads})` });
  }
  const tied = raw.tie_word_embeddings ?? false;
  if (typeof tied !== 'boolean') errors.push({ path: 'tie_word_embeddings', message: 'must be a boolean' });

  let checkpointDtype: WeightDtype = 'bf16';
  let fp8Scheme: Fp8Scheme = 'all-linear';
  const q = raw.quantization_config;
  if (q !== undefined) {
    const method =
      typeof q === 'object' && q !== null ? (q as Record<string, unknown>).quant_method : undefined;
    // fbgemm_fp8 is Meta's FP8 405B checkpoint; `fp8` is vLLM / llm-compressor's own format.
    if (method === 'fbgemm_fp8' || method === 'fp8') {
      checkpointDtype = 'fp8';
      fp8Scheme = method === 'fbgemm_fp8' ? 'meta' : 'all-linear';
    } else
      errors.push({
        path: 'quantization_config.quant_method',
        message: `unsupported: ${JSON.stringify(method)}`,
      });
  } else {
    const dt = raw.torch_dtype ?? raw.dtype ?? 'bfloat16';
    // float16 checkpoints take the same 2 bytes a parameter as bfloat16, which is all the arithmetic needs.
    if (dt !== 'bfloat16' && dt !== 'float16') {
      errors.push({
        path: 'torch_dtype',
        message: `unsupported: ${JSON.stringify(dt)} (bfloat16 or float16)`,
      });
    }
  }

  if (errors.length > 0) return err(errors);
  return ok({
    shape: {
      id,
      layers,
      hidden,
      intermediate,
      heads,
      kvHeads,
      headDim,
      vocab,
      maxPositions,
      tiedEmbeddings: tied === true,
    },
    checkpointDtype,
    fp8Scheme,
  });
}
