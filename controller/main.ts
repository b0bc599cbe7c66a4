/**
 * The controller process:
 *   node --import tsx controller/main.ts --config FILE [--listen HOST:PORT] [--http-listen HOST:PORT]
 *     [--redis redis://HOST:PORT] [--redis-wait-ms MS] [--tenants FILE]
 * --redis overrides the config's `redis:`. Redis unreachable at start: the process waits for it (retrying with
 * backoff, a warning every 10 s) with its gRPC port up and health NOT_SERVING, for --redis-wait-ms (default:
 * for ever), then exits 1; a Kubernetes pod would crash-loop if it exited at once. --tenants: API keys (SHA-256 digests), classes and budgets per
 * tenant (controller/tenancy/tenant-config.ts), read and validated before the wait for Redis (a bad file exits 1
 * at once, naming the file and every problem); without it the API is open, and a warning says so.
 * CORRAL_CLUSTER_TOKEN: the worker protocol's shared secret (common/cluster-token.ts); without it any caller
 * may register as a worker, and a warning says so.
 * Logs JSON lines on stderr; once serving, one line with `msg: "listening"`, `grpc: "HOST:PORT"` and, with
 * --http-listen, `http: "HOST:PORT"` of the OpenAI-compatible API (the CLI and tests parse it). A bad config file exits 1 listing every problem. SIGTERM/SIGINT: stop accepting, let
 * running requests finish (up to 10 s), exit 0.
 */
import { parseArgs } from 'node:util';
import { systemClock } from '../common/clock.ts';
import { CLUSTER_TOKEN_ENV, clusterTokenFromEnv } from '../common/cluster-token.ts';
import { ValidationError } from '../common/errors.ts';
import { startGrpcServer } from '../common/grpc-server.ts';
import { createLogger } from '../common/log.ts';
import { type LoadedAdmission, loadAdmission, readTenants } from './admission/load-admission.ts';
import { loadControllerConfig } from './config/config-file.ts';
import { type ControllerConfig, parseListen } from './config/controller-config.ts';
import { startController } from './controller.ts';
import { startHttpServer } from './http/http-server.ts';
import { pingRedis, redactRedisUrl, waitForRedis } from './redis-wait.ts';

const USAGE =
  'usage: controller/main.ts --config FILE [--listen HOST:PORT] [--http-listen HOST:PORT] [--tenants FILE] [--redis URL] [--redis-wait-ms MS]';
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<number> {
  const log = createLogger('controller');
  let values: {
    config?: string;
    listen?: string;
    'http-listen'?: string;
    tenants?: string;
    redis?: string;
    'redis-wait-ms'?: string;
  };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        'http-listen': { type: 'string' },
        tenants: { type: 'string' },
        redis: { type: 'string' },
        'redis-wait-ms': { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  if (!values.config) {
    process.stderr.write(`--config is required\n${USAGE}\n`);
    return 2;
  }
  let config: ReturnType<typeof loadControllerConfig>;
  let httpListen: { host: string; port: number } | undefined;
  let admission: LoadedAdmission;
  try {
    if (values['http-listen'] !== undefined) {
      const parsed = parseListen(values['http-listen']);
      if (typeof parsed === 'string')
        throw new ValidationError('--http-listen', [{ path: '--http-listen', message: parsed }]);
      httpListen = parsed;
    }
    config = loadControllerConfig(values.config);
    if (values.listen !== undefined) {
      const listen = parseListen(values.listen);
      if (typeof listen === 'string')
        throw new ValidationError('--listen', [{ path: '--listen', message: listen }]);
      config = { ...config, listen };
    }
    if (values.redis !== undefined) {
      if (!/^rediss?:\/\//.test(values.redis))
        throw new ValidationError('--redis', [
          { path: '--redis', message: 'must be a redis:// or rediss:// URL' },
        ]);
      config = { ...config, redis: values.redis };
    }
    let redisWaitMs: number | undefined;
    if (values['redis-wait-ms'] !== undefined) {
      redisWaitMs = Number(values['redis-wait-ms']);
      if (!Number.isInteger(redisWaitMs) || redisWaitMs < 0)
        throw new ValidationError('--redis-wait-ms', [
          { path: '--redis-wait-ms', message: 'must be a non-negative integer (milliseconds)' },
        ]);
    }
    // Before waiting for Redis: a bad tenant file is the operator's to fix, and no wait would fix it.
    const tenants = await readTenants(values.tenants, config.redis);
    if (config.redis)
      config = { ...config, listen: await awaitRedis(config, config.redis, redisWaitMs, log) };
    admission = await loadAdmission({
      tenants,
      prefix: 'corral',
      clock: systemClock,
      log,
    });
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    log.error('invalid configuration', { file: values.config, errors: e.errors });
    process.stderr.write(
      `${e.what} is invalid:\n${e.errors.map((x) => `  ${x.path}: ${x.message}`).join('\n')}\n`,
    );
    return 1;
  }

  const clusterToken = clusterTokenFromEnv();
  if (!clusterToken)
    log.warn(
      `${CLUSTER_TOKEN_ENV} is not set: any caller that reaches this port can register as a worker and be sent requests`,
    );
  const controller = await startController(config, {
    log,
    admission: admission.admission,
    ...(clusterToken ? { clusterToken } : {}),
  });
  // The OpenAI-compatible front door: the same request path as gRPC Inference, translated at its edge.
  const http = httpListen
    ? await startHttpServer({
        ...httpListen,
        path: controller.path,
        admission: controller.admission,
        batches: controller.batches,
        log: log.child({ component: 'http' }),
      })
    : undefined;
  // Handlers first: whoever reads the listening line may signal at once, and an unhandled SIGTERM kills.
  const signalled = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info('signal received; shutting down', { signal });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // Printed whatever CORRAL_LOG_LEVEL says: `corral up` and the tests find the address in this line.
  createLogger('controller', { level: 'info' }).info('listening', {
    grpc: controller.address,
    ...(http ? { http: http.address } : {}),
    deployments: config.deployments.map((d) => d.name),
  });
  await signalled;
  await Promise.all([http?.close(SHUTDOWN_GRACE_MS), controller.stop(SHUTDOWN_GRACE_MS)]);
  await admission.close();
  return 0;
}

/**
 * Returns at once when Redis answers. Otherwise serves health (NOT_SERVING) on the controller's port while it
 * waits, so probes see a controller that is starting, and returns that port (the same one when it was 0).
 */
async function awaitRedis(
  config: ControllerConfig,
  url: string,
  maxWaitMs: number | undefined,
  log: ReturnType<typeof createLogger>,
): Promise<ControllerConfig['listen']> {
  try {
    await pingRedis(url);
    return config.listen;
  } catch {}
  const standIn = await startGrpcServer({ ...config.listen, services: [], protoFiles: [] });
  log.warn('redis unreachable at start; serving health NOT_SERVING until it answers', {
    redis: redactRedisUrl(url),
    grpc: standIn.address,
    ...(maxWaitMs === undefined ? {} : { maxWaitMs }),
  });
  try {
    await waitForRedis({ url, log, ...(maxWaitMs === undefined ? {} : { maxWaitMs }) });
  } finally {
    await standIn.close(1000);
  }
  return { ...config.listen, port: standIn.port };
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    createLogger('controller').error('controller failed', { error: e instanceof Error ? e : String(e) });
    process.exit(1);
  },
);
