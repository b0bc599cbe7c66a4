/**
 * `corral up`: the local cluster on simulated GPUs. Starts the controller and the workers, waits until the
 * model is served, prints the endpoints, the API key and a command to try, and on Ctrl-C stops everything it
 * started. Secure by default: the API needs the key made on first start (local-api-key.ts), kept in
 * .corral/local/api-key; `corral generate` and `corral status` read it from there.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CommandSpec, intFlag, UsageError } from './args.ts';
import { ENDPOINTS_FILE, LOCAL_API_KEY_FILE, LOCAL_STATE_DIR, type LocalEndpoints } from './endpoint.ts';
import { ensureApiKey } from './local-api-key.ts';
import { LocalCluster, type WorkerSpec } from './local-cluster.ts';
import { LOCAL_MODELS, type LocalModel, localClusterConfig, localConfigProblem } from './local-config.ts';

export const upSpec: CommandSpec = {
  usage:
    'corral up [--model 405b-fp8|405b-bf16|8b] [--nodes N] [--gpus-per-node G] [--gpu-type h100-80g] [--port 7070] [--http-port 8000] [--ready-timeout-s 600]',
  options: {
    model: { type: 'string' },
    nodes: { type: 'string' },
    'gpus-per-node': { type: 'string' },
    'gpu-type': { type: 'string' },
    port: { type: 'string' },
    'http-port': { type: 'string' },
    'ready-timeout-s': { type: 'string' },
  },
};

export async function runUp(values: Record<string, unknown>): Promise<number> {
  const nodes = intFlag(values, 'nodes') ?? 2;
  const gpus = intFlag(values, 'gpus-per-node') ?? 8;
  const port = intFlag(values, 'port') ?? 7070;
  const httpPort = intFlag(values, 'http-port') ?? 8000;
  const readyTimeoutS = intFlag(values, 'ready-timeout-s') ?? 600;
  const gpuType = (values['gpu-type'] as string | undefined) ?? 'h100-80g';
  if (nodes < 1 || nodes > 64) throw new UsageError('--nodes must be between 1 and 64');
  if (gpus < 1 || gpus > 16) throw new UsageError('--gpus-per-node must be between 1 and 16');
  const modelFlag = (values.model as string | undefined) ?? '405b-fp8';
  if (!(LOCAL_MODELS as readonly string[]).includes(modelFlag))
    throw new UsageError(`--model must be one of ${LOCAL_MODELS.join(', ')}`);
  const local = { nodes, gpusPerNode: gpus, model: modelFlag as LocalModel, gpuType };
  const problem = localConfigProblem(local);
  if (problem) throw new UsageError(problem);

  const started = Date.now();
  const say = (m: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
  rmSync(join(LOCAL_STATE_DIR, 'logs'), { recursive: true, force: true });
  mkdirSync(LOCAL_STATE_DIR, { recursive: true });
  const apiKey = ensureApiKey(LOCAL_API_KEY_FILE);
  if (apiKey.created) say(`made an API key for this cluster: ${LOCAL_API_KEY_FILE} (mode 0600)`);

  const workers: WorkerSpec[] = Array.from({ length: nodes }, (_, i) => ({
    nodeName: `node-${i + 1}`,
    gpus,
    gpuType,
    labels: { 'topology.corral.dev/rack': 'rack-1' },
  }));
  let cluster: LocalCluster | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('stopping the local cluster...');
    await cluster?.stop();
    rmSync(ENDPOINTS_FILE, { force: true });
    say('stopped; no process left running');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    cluster = await LocalCluster.start({
      dir: LOCAL_STATE_DIR,
      config: localClusterConfig(local),
      controllerListen: `127.0.0.1:${port}`,
      httpListen: `127.0.0.1:${httpPort}`,
      workers,
      // two replicas: either serves; one leads the group reconciler, the other takes over if it dies
      controllers: 2,
      onProgress: say,
      auth: { apiKey: apiKey.key },
    });
    say('loading the model on the simulated GPUs...');
    await cluster.waitReady(readyTimeoutS * 1000);
  } catch (e) {
    say(`error: ${(e as Error).message}`);
    say(`logs: ${join(LOCAL_STATE_DIR, 'logs')}`);
    await stop(1);
    return 1;
  }

  const endpoints: LocalEndpoints = {
    grpc: cluster.grpcAddress,
    http: cluster.httpAddress,
    pid: process.pid,
    controllers: cluster.controllerAddresses,
  };
  writeFileSync(ENDPOINTS_FILE, `${JSON.stringify(endpoints)}\n`);
  const status = await cluster.status();
  const model = status.deployments[0]?.name ?? 'MODEL';
  process.stdout.write(
    [
      '',
      `corral is up (${nodes} simulated nodes x ${gpus} ${gpuType}).`,
      ...cluster.controllers.map(
        (c) => `  gRPC   ${c.grpc}   (${c.name}: corral.v1.Inference, corral.v1.Control; reflection on)`,
      ),
      ...cluster.controllers.map((c) => `  HTTP   http://${c.http}/v1   (${c.name}: OpenAI-compatible)`),
      `  logs   ${join(LOCAL_STATE_DIR, 'logs')}`,
      `  key    ${LOCAL_API_KEY_FILE}   (every call needs it; corral generate/status read it from there)`,
      '',
      'Try, in another terminal:',
      `  ./bin/corral generate --model ${model} "Tell me about the Rocky Mountains"`,
      '  ./bin/corral status',
      `  export OPENAI_API_KEY=${apiKey.key} OPENAI_BASE_URL=http://${cluster.httpAddress}/v1`,
      `  curl -N http://${cluster.httpAddress}/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \\`,
      `    -H 'Content-Type: application/json' \\`,
      `    -d '{"model": "${model}", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}'`,
      '',
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n'),
  );
  const replicas = cluster.controllers.map((c) => c.process);
  for (const p of [...replicas, ...cluster.workers.values()]) {
    void p.exited.then((x) => {
      if (stopping) return;
      say(`${p.name} exited unexpectedly (${x.signal ?? `code ${x.code}`}); last output:`);
      for (const line of p.logTail(10)) say(`  ${line}`);
      // another controller replica serves on and takes over the groups; the cluster stops with the last one
      if (replicas.includes(p) && replicas.some((r) => !r.hasExited)) return;
      void stop(1);
    });
  }
  await new Promise(() => {}); // runs until a signal stops it
  return 0;
}
