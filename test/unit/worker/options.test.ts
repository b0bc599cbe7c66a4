import { describe, expect, it } from 'vitest';
import { compileWorkerOptions, parseHostPort, SIM_ENGINE_PATH } from '../../../worker/options.ts';

const REQUIRED = ['--controller', '127.0.0.1:50051', '--gpus', '8', '--gpu-type', 'h100-80g'];

describe('compileWorkerOptions', () => {
  it('fills documented defaults', () => {
    const r = compileWorkerOptions([...REQUIRED, '--node-name', 'n1']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      controllers: [{ t: 'address', address: '127.0.0.1:50051' }],
      gpus: { count: 8, type: 'h100-80g', memoryBytes: 80 * 1024 ** 3 },
      nodeName: 'n1',
      workerId: 'n1',
      listen: { host: '127.0.0.1', port: 0 },
      engine: { kind: 'sim', command: SIM_ENGINE_PATH, prefixArgs: ['serve'] },
      engineHost: '127.0.0.1',
      labels: {},
      heartbeatMs: 1000,
      engineStartTimeoutMs: 600_000,
      drainTimeoutMs: 30_000,
    });
  });

  it('takes several controller replicas, repeated or comma-separated, each once', () => {
    const r = compileWorkerOptions([
      ...REQUIRED,
      '--controller',
      '127.0.0.1:50052, ctl-1.ctl:7070',
      '--controller',
      '127.0.0.1:50051,dns:///corral-controller.corral.svc:7070',
    ]);
    expect(r.ok && r.value.controllers).toEqual([
      { t: 'address', address: '127.0.0.1:50051' },
      { t: 'address', address: '127.0.0.1:50052' },
      { t: 'address', address: 'ctl-1.ctl:7070' },
      { t: 'dns', host: 'corral-controller.corral.svc', port: 7070 },
    ]);
    const bad = compileWorkerOptions([...REQUIRED, '--controller', '127.0.0.1:1,,nope,dns:///x']);
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.error).toEqual([
      { path: '--controller', message: 'must be HOST:PORT or dns:///NAME:PORT, got ""' },
      { path: '--controller', message: 'must be HOST:PORT or dns:///NAME:PORT, got "nope"' },
      { path: '--controller', message: 'must be HOST:PORT or dns:///NAME:PORT, got "dns:///x"' },
    ]);
  });

  it('reads every flag', () => {
    const r = compileWorkerOptions([
      ...REQUIRED,
      '--gpu-memory-gib',
      '141',
      '--worker-id',
      'w-7',
      '--listen',
      '0.0.0.0:7000',
      '--engine',
      'vllm',
      '--label',
      'zone=a',
      '--label',
      'rack=r1=x',
      '--heartbeat-ms',
      '250',
      '--engine-start-timeout-ms',
      '5000',
      '--drain-timeout-ms',
      '100',
    ]);
    expect(r.ok && r.value).toMatchObject({
      gpus: { memoryBytes: 141 * 1024 ** 3 },
      workerId: 'w-7',
      listen: { host: '0.0.0.0', port: 7000 },
      engine: { kind: 'vllm', command: 'vllm' },
      labels: { zone: 'a', rack: 'r1=x' },
      heartbeatMs: 250,
      engineStartTimeoutMs: 5000,
      drainTimeoutMs: 100,
    });
  });

  it('lets --engine-command override the binary on the same code path', () => {
    const r = compileWorkerOptions([
      ...REQUIRED,
      '--engine',
      'vllm',
      '--engine-command',
      '/opt/vllm/bin/vllm',
    ]);
    expect(r.ok && r.value.engine).toEqual({
      kind: 'vllm',
      command: '/opt/vllm/bin/vllm',
      prefixArgs: ['serve'],
    });
  });

  it('collects every error, each naming its flag', () => {
    const r = compileWorkerOptions([
      '--gpus',
      'eight',
      '--gpu-type',
      'mystery',
      '--listen',
      'nowhere',
      '--engine',
      'trt',
      '--label',
      'novalue',
      '--heartbeat-ms',
      '1.5',
    ]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => e.path)).toEqual([
      '--controller',
      '--gpus',
      '--gpu-memory-gib',
      '--listen',
      '--engine',
      '--label[0]',
      '--heartbeat-ms',
    ]);
    expect(r.error[1]?.message).toBe('must be an integer >= 0, got "eight"');
  });

  it('reports an unknown flag', () => {
    const r = compileWorkerOptions([...REQUIRED, '--gpu', '8']);
    expect(!r.ok && r.error[0]?.path).toBe('argv');
    expect(!r.ok && r.error[0]?.message).toContain("'--gpu'");
  });

  it.each([
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:50051', { host: '::1', port: 50051 }],
    ['controller.corral.svc:50051', { host: 'controller.corral.svc', port: 50051 }],
    ['host:70000', undefined],
    ['host', undefined],
    [':80', undefined],
  ])('parseHostPort(%s)', (input, expected) => {
    expect(parseHostPort(input)).toEqual(expected);
  });
});
