/**
 * The Python grpcio example (examples/python) against a local cluster: protos compiled by generate.sh, the
 * client run with Debian's /usr/bin/python3, its streamed answer compared with what the TypeScript client gets
 * for the same seeded request (the engine simulator is deterministic per seed and prompt). The cluster needs an
 * API key, as `corral up`'s does: the example sends it from --api-key or $CORRAL_API_KEY.
 * Needs: apt-get install -y python3-grpcio python3-grpc-tools protobuf-compiler protobuf-compiler-grpc
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { inferenceClient } from '../../cli/clients.ts';
import { newApiKey } from '../../cli/local-api-key.ts';
import { REPO_ROOT } from '../../cli/local-cluster.ts';
import { PriorityClass } from '../../proto/gen/corral/v1/inference.ts';
import { collect } from '../helpers/grpc-stream.ts';
import { h100Nodes, useLocalCluster } from '../helpers/local-cluster.ts';

const run = promisify(execFile);
const MODEL = 'llama-3.1-8b-instruct';
const CONFIG = `
heartbeatIntervalMs: 500
workerTimeoutMs: 3000
deployments:
  - name: ${MODEL}
    model: meta-llama/Llama-3.1-8B-Instruct
    replicas: 1
    gpusPerReplica: 1
    maxModelLen: 4096
    maxNumSeqs: 64
    defaultMaxTokens: 32
    maxPromptBytes: 65536
    engineArgs: [--sim-startup-ms, '300', --sim-ttft-ms, '20', --sim-itl-ms, '5']
`;
const RUN_SH = join(REPO_ROOT, 'examples/python/run.sh');
const API_KEY = newApiKey();

const e2e = useLocalCluster('python', {
  config: CONFIG,
  workers: h100Nodes(1),
  auth: { apiKey: API_KEY },
});

describe('python grpcio example', () => {
  it('prints the streamed answer, the same text the TypeScript client receives', async () => {
    const prompt = 'What is the capital of France?';
    const { stdout, stderr } = await run(
      RUN_SH,
      [
        '--target',
        e2e.cluster.grpcAddress,
        '--model',
        MODEL,
        '--prompt',
        prompt,
        '--max-tokens',
        '12',
        '--seed',
        '7',
        '--ignore-eos',
        '--request-id',
        'py-1',
        '--api-key',
        API_KEY,
      ],
      { timeout: 60_000 },
    );
    expect(stderr).toMatch(/finished: reason=LENGTH prompt_tokens=\d+ completion_tokens=12 request_id=py-1/);

    const client = inferenceClient(e2e.cluster.grpcAddress, API_KEY);
    try {
      const ts = await collect(
        client.generate(
          {
            model: MODEL,
            requestId: 'ts-1',
            input: { $case: 'prompt', value: prompt },
            maxTokens: 12,
            sampling: { seed: 7, stop: [], ignoreEos: true, minTokens: 0 },
            priority: 0,
            returnTokenIds: false,
            priorityClass: PriorityClass.PRIORITY_CLASS_UNSPECIFIED,
          },
          new Metadata(),
          { deadline: Date.now() + 60_000 },
        ),
      );
      expect(ts.text.length).toBeGreaterThan(0);
      expect(stdout).toBe(`${ts.text}\n`);
    } finally {
      client.close();
    }
  });

  it('reports a refusal with its gRPC code and exits 1', async () => {
    const failed = await refusal(['--model', 'no-such-model', '--chat', 'hi'], { CORRAL_API_KEY: API_KEY });
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/^error: NOT_FOUND: /m);
  });

  it('without the key, or with another, is refused UNAUTHENTICATED', async () => {
    const envs: Record<string, string>[] = [{}, { CORRAL_API_KEY: newApiKey() }];
    for (const env of envs) {
      const failed = await refusal(['--model', MODEL, '--chat', 'hi'], env);
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toMatch(/^error: UNAUTHENTICATED: invalid or missing API key/m);
    }
  });
});

/** Runs the example against the cluster expecting it to fail; its exit code and stderr. */
function refusal(args: string[], env: Record<string, string>) {
  const { CORRAL_API_KEY: _, ...rest } = process.env;
  return run(RUN_SH, ['--target', e2e.cluster.grpcAddress, ...args], {
    timeout: 60_000,
    env: { ...rest, ...env },
  }).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
}
