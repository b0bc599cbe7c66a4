import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../../../sim/engine/options.ts';

describe('parseArgs (vllm serve command line)', () => {
  it('reads --flag value and --flag=value, with vLLM defaults', () => {
    const r = parseArgs(
      ['serve', 'meta-llama/Llama-3.1-8B-Instruct', '--port=9000', '--max-num-seqs', '8'],
      {},
    );
    expect(r.kind).toBe('ok');
    if (r.kind !== 'ok') return;
    expect(r.options).toMatchObject({
      model: 'meta-llama/Llama-3.1-8B-Instruct',
      servedModelName: 'meta-llama/Llama-3.1-8B-Instruct',
      port: 9000,
      maxNumSeqs: 8,
      maxModelLen: 131072,
      gpuMemoryUtilization: 0.9,
      headless: false,
    });
  });

  it('accepts the flags corral passes for a multi-node rank', () => {
    const r = parseArgs(
      [
        'serve',
        'm',
        '--tensor-parallel-size',
        '8',
        '--pipeline-parallel-size',
        '2',
        '--nnodes',
        '2',
        '--node-rank',
        '1',
        '--master-addr',
        '10.0.0.1',
        '--headless',
      ],
      {},
    );
    expect(r.kind === 'ok' && r.options.headless).toBe(true);
  });

  it('reads --sim-* knobs from CORRAL_SIM_* when the flag is absent; the flag wins', () => {
    const env = { CORRAL_SIM_TTFT_MS: '7', CORRAL_SIM_OUTPUT: 'echo' };
    const a = parseArgs(['serve', 'm'], env);
    expect(a.kind === 'ok' && [a.options.ttftMs, a.options.output]).toEqual([7, 'echo']);
    const b = parseArgs(['serve', 'm', '--sim-ttft-ms', '3'], env);
    expect(b.kind === 'ok' && b.options.ttftMs).toBe(3);
  });

  it("takes vLLM's --block-size choices (default 16) and refuses others with argparse's text", () => {
    const ok = (args: string[]) => {
      const r = parseArgs(['serve', 'm', ...args], {});
      return r.kind === 'ok' ? r.options.blockSize : r;
    };
    expect(ok([])).toBe(16);
    expect(ok(['--block-size', '32'])).toBe(32);
    expect(ok(['--block-size=256'])).toBe(256);
    expect(ok(['--block-size', '12'])).toEqual({
      kind: 'usage-error',
      message: 'argument --block-size: invalid choice: 12 (choose from 1, 8, 16, 32, 64, 128, 256)',
    });
    expect(ok(['--block-size', 'big'])).toEqual({
      kind: 'usage-error',
      message: "argument --block-size: invalid int value: 'big'",
    });
  });

  it('rejects unknown flags and extra positionals like argparse', () => {
    expect(parseArgs(['serve', 'm', '--foo', '--bar=1'], {})).toEqual({
      kind: 'usage-error',
      message: 'unrecognized arguments: --foo --bar=1',
    });
    expect(parseArgs(['serve', 'm', 'extra'], {})).toEqual({
      kind: 'usage-error',
      message: 'unrecognized arguments: extra',
    });
    expect(parseArgs(['serve', 'm', '--port'], {})).toEqual({
      kind: 'usage-error',
      message: 'argument --port: expected one argument',
    });
  });

  it('collects every invalid value with its flag', () => {
    const r = parseArgs(
      ['serve', 'm', '--port', 'x', '--gpu-memory-utilization', '1.5', '--sim-output', 'loud'],
      {},
    );
    expect(r.kind === 'invalid' && r.errors.map((e) => e.path)).toEqual([
      '--sim-output',
      '--port',
      '--gpu-memory-utilization',
    ]);
  });

  it('takes vLLM scheduler defaults by GPU type, the time scale under either name, and start-up overrides only when given', () => {
    const h100 = parseArgs(['serve', 'm'], {});
    expect(h100.kind === 'ok' && h100.options).toMatchObject({
      maxNumSeqs: 1024,
      maxNumBatchedTokens: 8192,
      timeScale: 1,
      startupMs: undefined,
      kvTokens: undefined,
      enablePrefixCaching: true,
    });
    const a100 = parseArgs(['serve', 'm', '--sim-gpu-type', 'a100-80g', '--time-scale', '10'], {});
    expect(a100.kind === 'ok' && a100.options).toMatchObject({
      maxNumSeqs: 256,
      maxNumBatchedTokens: 2048,
      timeScale: 10,
    });
    const flags = parseArgs(
      ['serve', 'm', '--sim-time-scale=4', '--sim-startup-ms', '0', '--no-enable-prefix-caching'],
      { CORRAL_SIM_KV_TOKENS: '4096' },
    );
    expect(flags.kind === 'ok' && flags.options).toMatchObject({
      timeScale: 4,
      startupMs: 0,
      kvTokens: 4096,
      enablePrefixCaching: false,
    });
  });

  it('refuses an unknown GPU type, a non-positive time scale or load bandwidth', () => {
    const r = parseArgs(
      ['serve', 'm', '--sim-gpu-type', 'tpu', '--sim-time-scale', '0', '--sim-load-gbps', '-1'],
      {},
    );
    expect(r.kind === 'invalid' && r.errors.map((e) => e.path)).toEqual([
      '--sim-load-gbps',
      '--sim-time-scale',
      '--sim-gpu-type',
    ]);
  });
});
