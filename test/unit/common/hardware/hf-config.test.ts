import { describe, expect, it } from 'vitest';
import { parseHfConfig } from '../../../../common/hardware/hf-config.ts';
import { BUILTIN_MODELS } from '../../../../common/hardware/model-shape.ts';

// The fields of meta-llama/Llama-3.1-70B-Instruct's config.json that the parser reads.
const llama70b = {
  architectures: ['LlamaForCausalLM'],
  hidden_size: 8192,
  intermediate_size: 28672,
  max_position_embeddings: 131072,
  num_attention_heads: 64,
  num_hidden_layers: 80,
  num_key_value_heads: 8,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

describe('parseHfConfig', () => {
  it('parses Llama 3.1 70B into the built-in shape (head_dim from hidden / heads)', () => {
    const r = parseHfConfig('llama-3.1-70b', llama70b);
    expect(r).toEqual({
      ok: true,
      value: { shape: BUILTIN_MODELS['llama-3.1-70b'], checkpointDtype: 'bf16', fp8Scheme: 'all-linear' },
    });
  });

  it('reads an explicit head_dim, tied embeddings and an FP8 quantization_config', () => {
    const r = parseHfConfig('m', {
      ...llama70b,
      head_dim: 96,
      tie_word_embeddings: true,
      quantization_config: { quant_method: 'fbgemm_fp8' },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    expect(r.value.shape.headDim).toBe(96);
    expect(r.value.shape.tiedEmbeddings).toBe(true);
    expect(r.value.checkpointDtype).toBe('fp8');
    expect(r.value.fp8Scheme).toBe('meta');
  });

  it('defaults num_key_value_heads to the query heads (no GQA)', () => {
    const { num_key_value_heads: _, ...noGqa } = llama70b;
    const r = parseHfConfig('m', noGqa);
    expect(r.ok && r.value.shape.kvHeads).toBe(64);
  });

  it('collects every error with its path', () => {
    const r = parseHfConfig('m', {
      ...llama70b,
      num_hidden_layers: undefined,
      hidden_size: -1,
      num_key_value_heads: 7,
      torch_dtype: 'float32',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => e.path)).toEqual([
      'num_hidden_layers',
      'hidden_size',
      'num_key_value_heads',
      'torch_dtype',
    ]);
  });

  it('rejects a non-object', () => {
    expect(parseHfConfig('m', [1])).toEqual({
      ok: false,
      error: [{ path: '', message: 'must be a JSON object' }],
    });
  });
});
