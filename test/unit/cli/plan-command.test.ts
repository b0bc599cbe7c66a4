import { describe, expect, it } from 'vitest';
import { runPlanCommand } from '../../../cli/plan-command.ts';

const noFiles = (p: string): string => {
  throw new Error(`ENOENT: no such file '${p}'`);
};
const run = (args: string, read = noFiles) => runPlanCommand(args.split(' '), read);

describe('corral plan --json', () => {
  it('405B BF16 on 2x8xH100: one JSON object, TP8xPP2 first', () => {
    const r = run('--model llama-3.1-405b --dtype bf16 --gpus 2x8xh100-80g --json');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(['plans', 'rejected']);
    expect(out.plans.map((p: { tp: number; pp: number }) => [p.tp, p.pp])).toEqual([
      [8, 2],
      [16, 1],
    ]);
    const best = out.plans[0];
    expect(best).toMatchObject({ nodes: 2, gpus_per_node: 8, dtype: 'bf16', max_model_len: 131072 });
    expect(Object.keys(best.per_gpu)).toEqual(['total', 'usable', 'weights', 'reserve', 'kv_cache']);
    expect(best.kv_tokens).toBeGreaterThan(131072);
    expect(best.vllm_args[1]).toContain('--headless');
  });

  it('1x8xH100 BF16 405B: empty plans, the memory reason in rejected', () => {
    const out = JSON.parse(run('--model llama-3.1-405b --dtype bf16 --gpus 1x8xh100-80g --json').stdout);
    expect(out.plans).toEqual([]);
    expect(out.rejected).toContainEqual({
      shape: 'BF16 TP8',
      reason: 'BF16 TP8 on H100-80G: 94.5 GiB weights per GPU > 71.7 GiB usable',
    });
  });

  it('defaults an -FP8 checkpoint to fp8 and passes the constraints through', () => {
    const out = JSON.parse(
      run(
        '--model meta-llama/Meta-Llama-3.1-405B-Instruct-FP8 --gpus 1x8xH100-80G --max-model-len 32768 --gpu-memory-utilization 0.95 --json',
      ).stdout,
    );
    expect(out.plans[0]).toMatchObject({
      tp: 8,
      dtype: 'fp8',
      quantization: null,
      max_model_len: 32768,
      gpu_memory_utilization: 0.95,
    });
  });
});

describe('corral plan (table)', () => {
  it('prints the plans, their reasons and the rejected shapes', () => {
    const r = run('--model llama-3.1-405b --dtype bf16 --gpus 2x8xh100-80g');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^1 +BF16 TP8xPP2 +2x8 +71\.7 +47\.3 /m);
    expect(r.stdout).toMatch(/^2 +BF16 TP16 /m);
    expect(r.stdout).toContain('vLLM measured TP8xPP2 6.6x faster than TP16 without InfiniBand');
    expect(r.stdout).toContain('BF16 TP8 on H100-80G: 94.5 GiB weights per GPU > 71.7 GiB usable');
  });

  it('says so when nothing fits', () => {
    expect(run('--model llama-3.1-405b --dtype bf16 --gpus 1x8xh100-80g').stdout).toContain(
      'no feasible plan',
    );
  });
});

describe('corral plan --config', () => {
  const config = JSON.stringify({
    num_hidden_layers: 32,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    vocab_size: 128256,
    max_position_embeddings: 131072,
    torch_dtype: 'bfloat16',
  });

  it('plans a model from its config.json', () => {
    const read = (p: string) => (p === '/m/config.json' ? config : noFiles(p));
    const r = run('--model my-org/my-8b --config /m/config.json --dtype bf16 --gpus 1x1xl40s --json', read);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).plans[0]).toMatchObject({ model: 'my-org/my-8b', tp: 1, gpu: 'l40s-48g' });
  });

  it('reports config errors with their field paths', () => {
    const r = run('--model m --config /m/config.json --gpus 1x8xh100-80g', () => '{"hidden_size": "big"}');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--config: /m/config.json: hidden_size: must be a positive integer');
    expect(r.stderr).toContain('--config: /m/config.json: num_hidden_layers: required');
  });

  it('reports an unreadable file', () => {
    const r = run('--model m --config /nope.json --gpus 1x8xh100-80g');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--config: cannot read /nope.json');
  });
});

describe('corral plan: bad arguments exit 2 naming the argument', () => {
  it.each([
    ['--gpus 1x8xh100-80g', '--model: required'],
    ['--model llama-3.1-405b', '--gpus: required'],
    [
      '--model llama-3.1-405b --gpus 8xh100',
      "--gpus: expected NODESxGPUSxTYPE like 2x8xh100-80g, got '8xh100'",
    ],
    ['--model llama-3.1-405b --gpus 1x8xv100', "--gpus: unknown GPU type 'v100'"],
    ['--model llama-3.1-405b --gpus 0x8xh100-80g', '--gpus: node and GPU counts must be >= 1'],
    ['--model gpt-9 --gpus 1x8xh100-80g', "--model: 'gpt-9' is not built in"],
    [
      '--model llama-3.1-405b --gpus 1x8xh100-80g --dtype int4',
      "--dtype: must be bf16, fp8 or auto, got 'int4'",
    ],
    [
      '--model llama-3.1-405b --gpus 1x8xh100-80g --max-model-len 12.5',
      '--max-model-len: must be a positive integer',
    ],
    ['--model llama-3.1-405b --gpus 1x8xh100-80g --max-model-len 262144', '--max-model-len: 262144 exceeds'],
    [
      '--model llama-3.1-405b --gpus 1x8xh100-80g --gpu-memory-utilization 1.5',
      '--gpu-memory-utilization: must be',
    ],
    [
      '--model llama-3.1-405b --gpus 1x8xh100-80g --kv-cache-dtype int8',
      '--kv-cache-dtype: must be auto or fp8',
    ],
    ['--model llama-3.1-405b --gpus 1x8xh100-80g --bogus', "Unknown option '--bogus'"],
  ])('%s', (args, message) => {
    const r = run(args);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('usage: corral plan');
  });

  it('lists every problem at once', () => {
    const r = run('--model gpt-9 --gpus nope --dtype int4');
    expect(r.stderr.split('\n').filter((l) => l.includes('--'))).toHaveLength(4);
  });
});
