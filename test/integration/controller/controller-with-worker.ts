/**
 * useControllerWithWorker(): a controller on the test file's Redis with one fake worker, `n1`, whose engine is
 * ready. It registers a beforeAll that starts both and an afterAll that stops the worker, then the controller.
 * Heartbeats are quick (every 200 ms, a worker lost after 600 ms) unless `config` says otherwise; `config` is
 * the rest of the controller config (deployments, queue, batch). `deps` may be a function, called in the beforeAll:
 * for deps built on what other hooks started first (a rate limiter on the file's Redis client).
 */
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../../common/log.ts';
import {
  type ControllerOptions,
  compileControllerConfig,
} from '../../../controller/config/controller-config.ts';
import {
  type ControllerDeps,
  type RunningController,
  startController,
} from '../../../controller/controller.ts';
import { startedInHook } from '../../helpers/started-in-hook.ts';
import { FakeWorker } from './fake-worker.ts';

export interface ControllerWithWorker {
  readonly controller: RunningController;
  readonly worker: FakeWorker;
}

export function useControllerWithWorker(
  redis: { readonly url: string },
  config: Omit<ControllerOptions, 'listen' | 'redis'>,
  deps: Omit<ControllerDeps, 'log'> | (() => Omit<ControllerDeps, 'log'>) = {},
): ControllerWithWorker {
  let controller: RunningController | undefined;
  let worker: FakeWorker | undefined;
  beforeAll(async () => {
    const compiled = compileControllerConfig({
      listen: '127.0.0.1:0',
      redis: redis.url,
      heartbeatIntervalMs: 200,
      workerTimeoutMs: 600,
      ...config,
    });
    controller = await startController(compiled, {
      log: silentLogger,
      ...(typeof deps === 'function' ? deps() : deps),
    });
    worker = await FakeWorker.start(controller.address, 'n1');
    await worker.registerReady(controller.registry);
  });
  afterAll(async () => {
    await worker?.stop();
    await controller?.stop(1000);
  });
  return {
    get controller() {
      return startedInHook(controller, "useControllerWithWorker()'s controller");
    },
    get worker() {
      return startedInHook(worker, "useControllerWithWorker()'s worker");
    },
  };
}
