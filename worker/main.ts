/**
 * Entry point of the worker agent on one GPU node:
 *   node --import tsx worker/main.ts --controller HOST:PORT --gpus 8 --gpu-type h100-80g [flags]
 * (flags: worker/options.ts). Logs JSON lines on stderr; the line with `msg: "listening"` carries the Worker
 * service's `grpc` address. SIGTERM/SIGINT drain and stop the engines, then exit 0; a second signal or an
 * uncaught error kills every engine process group at once. Exit 2: invalid flags.
 * CORRAL_CLUSTER_TOKEN: the worker protocol's shared secret, the controller's (common/cluster-token.ts).
 */
import { systemClock } from '../common/clock.ts';
import { CLUSTER_TOKEN_ENV, clusterTokenFromEnv } from '../common/cluster-token.ts';
import { createLogger } from '../common/log.ts';
import { WorkerAgent } from './agent/worker-agent.ts';
import { fetchEngineClient } from './engine/engine-client.ts';
import { pickFreePort } from './engine/free-port.ts';
import { killAllSync, nodeSpawner } from './engine/spawner.ts';
import { compileWorkerOptions } from './options.ts';

const log = createLogger('worker');

// Whatever happens to this process, its engines must not outlive it (a 405B engine holds 8 GPUs).
process.on('exit', killAllSync);
process.on('uncaughtException', (e) => {
  log.error('uncaught exception; killing engines and exiting', { error: e });
  killAllSync();
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  log.error('unhandled rejection; killing engines and exiting', {
    error: e instanceof Error ? e : String(e),
  });
  killAllSync();
  process.exit(1);
});

const compiled = compileWorkerOptions(process.argv.slice(2));
if (!compiled.ok) {
  for (const e of compiled.error) process.stderr.write(`worker: ${e.path}: ${e.message}\n`);
  log.error('invalid options', { errors: compiled.error });
  process.exit(2);
}
const config = compiled.value;
const clusterToken = clusterTokenFromEnv();
if (!clusterToken)
  log.warn(
    `${CLUSTER_TOKEN_ENV} is not set: any caller that reaches this worker's port can generate on its engines`,
  );
const agent = new WorkerAgent(config, {
  spawner: nodeSpawner,
  http: fetchEngineClient(config.engineApiKey),
  clock: systemClock,
  random: Math.random,
  pickPort: pickFreePort,
  log,
  ...(clusterToken ? { clusterToken } : {}),
});

let signals = 0;
const onSignal = (signal: NodeJS.Signals) => {
  signals += 1;
  if (signals > 1) {
    log.warn('second signal: killing engines now', { signal });
    killAllSync();
    process.exit(1);
  }
  agent.shutdown(signal).then(
    () => process.exit(0),
    (e: unknown) => {
      log.error('shutdown failed', { error: e instanceof Error ? e : String(e) });
      killAllSync();
      process.exit(1);
    },
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  await agent.start();
} catch (e) {
  log.error('worker failed to start', { error: e instanceof Error ? e : String(e) });
  killAllSync();
  process.exit(1);
}
