import { describe, expect, it } from 'vitest';
import { type EngineSpec, engineArgv, servedModelName } from '../../../../worker/engine/launch-command.ts';

const spec: EngineSpec = {
  engineId: 'e1',
  model: 'meta-llama/Llama-3.1-8B-Instruct',
  args: [
    'meta-llama/Llama-3.1-8B-Instruct',
    '--tensor-parallel-size',
    '1',
    '--served-model-name',
    'llama-8b',
  ],
  env: {},
  gpus: 1,
  headless: false,
  groupMember: false,
};
const vllm = { command: 'vllm', prefixArgs: ['serve'] };

describe('engine command line', () => {
  it('runs `<binary> serve <args>` and appends --host and --port', () => {
    expect(engineArgv(vllm, spec, '10.0.0.5', 8123)).toEqual({
      command: 'vllm',
      args: ['serve', ...spec.args, '--host', '10.0.0.5', '--port', '8123'],
    });
  });

  it('gives a headless rank no port', () => {
    const headless = { ...spec, headless: true, args: ['m', '--headless', '--node-rank', '1'] };
    expect(engineArgv(vllm, headless, '10.0.0.6', undefined).args).toEqual([
      'serve',
      'm',
      '--headless',
      '--node-rank',
      '1',
      '--host',
      '10.0.0.6',
    ]);
  });

  it('puts the model first when the controller sent only flags', () => {
    expect(
      engineArgv(vllm, { ...spec, model: 'm', args: ['--max-model-len', '8192'] }, 'h', 1).args.slice(0, 2),
    ).toEqual(['serve', 'm']);
  });

  it('finds the served model name in both flag spellings, else the model', () => {
    expect(servedModelName(spec)).toBe('llama-8b');
    expect(servedModelName({ ...spec, args: ['m', '--served-model-name=x'] })).toBe('x');
    expect(servedModelName({ ...spec, args: ['m'] })).toBe('m');
    expect(servedModelName({ ...spec, model: 'fallback', args: [] })).toBe('fallback');
  });
});
