/**
 * The worker protocol's shared secret over real gRPC: a controller with a cluster token refuses Register
 * without it or with another one (UNAUTHENTICATED, saying which) and welcomes the right one; a worker process
 * with the token refuses Worker calls without it. Health stays open for probes.
 */
import {
  type ClientDuplexStream,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendClusterToken } from '../../../common/cluster-token.ts';
import { silentLogger } from '../../../common/log.ts';
import { compileControllerConfig } from '../../../controller/config/controller-config.ts';
import { type RunningController, startController } from '../../../controller/controller.ts';
import {
  type ControllerMessage,
  RegistryClient,
  type WorkerMessage,
} from '../../../proto/gen/corral/v1/registry.ts';
import { WorkerClient } from '../../../proto/gen/corral/v1/worker.ts';
import { testPrefix } from '../../helpers/redis.ts';
import { useRedis } from '../../helpers/use-redis.ts';
import { FakeRegistry, WorkerProcess } from '../worker/agent/worker-harness.ts';

const TOKEN = 'cluster-secret-for-tests';

const redis = useRedis();
let controller: RunningController;
beforeAll(async () => {
  const config = compileControllerConfig({
    listen: '127.0.0.1:0',
    deployments: [{ name: 'm', model: 'm', replicas: 0, gpusPerReplica: 1, maxModelLen: 4096 }],
  });
  controller = await startController(
    { ...config, redis: redis.url },
    { log: silentLogger, redisPrefix: testPrefix('cluster-token'), clusterToken: TOKEN },
  );
});
afterAll(async () => {
  await controller?.stop(500);
});

/** Opens Register with `token` (none when undefined) and sends Hello: the first answer, or the error. */
function register(token: string | undefined): Promise<ControllerMessage | ServiceError> {
  const client = new RegistryClient(
    controller.address,
    credentials.createInsecure(),
    token === undefined ? {} : { interceptors: [sendClusterToken(token)] },
  );
  const stream: ClientDuplexStream<WorkerMessage, ControllerMessage> = client.register();
  return new Promise((resolve) => {
    stream.on('data', (m: ControllerMessage) => {
      resolve(m);
      stream.cancel();
      client.close();
    });
    stream.on('error', (e: ServiceError) => {
      resolve(e);
      client.close();
    });
    stream.write({
      msg: {
        $case: 'hello',
        value: {
          inventory: {
            workerId: 'n1',
            nodeName: 'n1',
            address: '127.0.0.1:1',
            gpus: { count: 8, type: 'h100-80g', memoryBytes: 80 * 2 ** 30 },
            labels: {},
            version: 'test',
            engineHost: '127.0.0.1',
          },
        },
      },
    });
  });
}

describe('controller with a cluster token', () => {
  it('refuses Register without the token, naming the variable to set', async () => {
    const r = (await register(undefined)) as ServiceError;
    expect(r.code).toBe(status.UNAUTHENTICATED);
    expect(r.details).toBe(
      '/corral.v1.Registry/Register needs the cluster token (set CORRAL_CLUSTER_TOKEN on the caller)',
    );
  });

  it('refuses Register with another token', async () => {
    const r = (await register('not-the-secret')) as ServiceError;
    expect(r.code).toBe(status.UNAUTHENTICATED);
    expect(r.details).toMatch(/cluster token does not match/);
  });

  it('welcomes a worker with the token', async () => {
    const r = (await register(TOKEN)) as ControllerMessage;
    expect(r.msg?.$case).toBe('welcome');
  });

  it('keeps the health service open for probes', async () => {
    const Health = makeGenericClientConstructor(healthService, 'Health');
    const health = new Health(controller.address, credentials.createInsecure());
    const check = health.check?.bind(health);
    const answer = await new Promise<{ status: string }>((resolve, reject) =>
      check?.({ service: '' }, (e: ServiceError | null, r: { status: string }) =>
        e ? reject(e) : resolve(r),
      ),
    );
    health.close();
    expect(answer.status).toBe('SERVING');
  });
});

describe('worker process with a cluster token', () => {
  const registry = new FakeRegistry();
  let worker: WorkerProcess;
  beforeAll(async () => {
    await registry.start();
    worker = new WorkerProcess(
      ['--controller', `127.0.0.1:${registry.port}`, '--gpus', '1', '--gpu-type', 'h100-80g'],
      { CORRAL_CLUSTER_TOKEN: TOKEN },
    );
  });
  afterAll(async () => {
    await worker?.stop();
    await registry.close();
  });

  const workerStatus = async (token: string | undefined) => {
    const client = new WorkerClient(
      await worker.listening(),
      credentials.createInsecure(),
      token === undefined ? {} : { interceptors: [sendClusterToken(token)] },
    );
    return new Promise<ServiceError | null>((resolve) =>
      client.status({}, new Metadata(), { deadline: Date.now() + 5000 }, (e) => {
        client.close();
        resolve(e);
      }),
    );
  };

  it('refuses Worker calls without the token and answers them with it', async () => {
    expect((await workerStatus(undefined))?.code).toBe(status.UNAUTHENTICATED);
    expect((await workerStatus('wrong'))?.code).toBe(status.UNAUTHENTICATED);
    expect(await workerStatus(TOKEN)).toBeNull();
  });
});
