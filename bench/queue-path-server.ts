/**
 * The server side of bench/queue-path.ts, in its own process as in production (a controller does not share
 * its event loop with its clients): a controller and the fake worker it dispatches to. Started with the
 * controller config (JSON) in argv[2], it sends `{t: 'ready', controller, worker, engineId}` over IPC once the
 * worker's engine is routable. Messages it answers (each reply carries the message's `seq`):
 *   {t: 'variant', variant}   how the controller's lane runs the durable path (see queue-path.ts)
 *   {t: 'submitted', ids}     when the gateway submitted each of those requests (epoch ms, sub-ms precision:
 *                             performance.timeOrigin + now, comparable with the parent's), then forgets them
 *   {t: 'cpu'}                the CPU time this process used so far (user + system, µs; all its threads)
 * `stop` (or the parent going away) stops it.
 */
import { performance } from 'node:perf_hooks';
import { silentLogger } from '../common/log.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';
import type { Lane } from '../controller/gateway/request-path.ts';
import { FakeWorker } from '../test/integration/controller/fake-worker.ts';

export type Variant = 'log' | 'live' | 'local';

export type ServerRequest =
  | { seq: number; t: 'variant'; variant: Variant }
  | { seq: number; t: 'submitted'; ids: string[] }
  | { seq: number; t: 'cpu' };

export type ServerMessage =
  | { t: 'ready'; controller: string; worker: string; engineId: string }
  | { t: 'reply'; seq: number; submittedAt?: Record<string, number>; cpuMicros?: number };

const WORKER_ID = 'bench-n1';

async function main(): Promise<void> {
  const send = (m: ServerMessage) => process.send?.(m);
  const config = compileControllerConfig(JSON.parse(process.argv[2] ?? '{}'));
  const controller = await startController(config, { log: silentLogger, redisPrefix: `bench${process.pid}` });
  const worker = await FakeWorker.start(controller.address, WORKER_ID);
  await worker.register();
  for (let i = 0; controller.registry.get(WORKER_ID)?.engines.length !== 1; i++) {
    if (i > 200) throw new Error('the fake worker did not report its engine');
    await new Promise((r) => setTimeout(r, 25));
  }
  const [deployment] = config.deployments;
  const lane = controller.lanes.lanes.get(deployment?.name ?? '') as Lane;
  // When the gateway submitted each request (the queue's submittedAt, on a finer clock): splits admit/queue.
  const submittedAt = new Map<string, number>();
  const submit = lane.queue.submit.bind(lane.queue);
  lane.queue.submit = (req, takeFor) => {
    submittedAt.set(req.id, performance.timeOrigin + performance.now());
    return submit(req, takeFor);
  };
  const shipped = { live: lane.live, wake: lane.wake, submit: lane.submit };
  const stop = async () => {
    await worker.stop();
    await controller.stop(1000);
    process.exit(0);
  };
  process.on('message', (m: ServerRequest | 'stop') => {
    if (m === 'stop') return void stop();
    worker.calls.length = 0; // the fake keeps every call; do not let it grow for the whole run
    if (m.t === 'cpu') {
      const used = process.cpuUsage();
      send({ t: 'reply', seq: m.seq, cpuMicros: used.user + used.system });
      return;
    }
    if (m.t === 'variant') {
      lane.live = m.variant === 'log' ? undefined : shipped.live;
      lane.wake = m.variant === 'log' ? undefined : shipped.wake;
      lane.submit = m.variant === 'local' ? shipped.submit : undefined;
      send({ t: 'reply', seq: m.seq });
      return;
    }
    const found: Record<string, number> = {};
    for (const id of m.ids) {
      const at = submittedAt.get(id);
      if (at !== undefined) found[id] = at;
      submittedAt.delete(id);
    }
    send({ t: 'reply', seq: m.seq, submittedAt: found });
  });
  process.on('disconnect', () => void stop());
  send({
    t: 'ready',
    controller: controller.address,
    worker: worker.address,
    engineId: controller.registry.get(WORKER_ID)?.engines[0]?.engineId ?? '',
  });
}

await main();
