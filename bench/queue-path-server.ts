/**
 * The server side of bench/queue-path.ts, two processes as in production (a controller does not share its event
 * loop with its clients, nor with the GPU nodes' workers): started with role `controller` and the controller
 * config (JSON) in argv[3], a controller; with role `worker` and the controller's address in argv[3], the fake
 * worker it dispatches to, which registers there.
 * The controller sends `{t: 'listening', controller}` over IPC once it serves, then `{t: 'ready', controller,
 * engineId}` once the worker's engine is routable; the worker sends `{t: 'ready', worker}` once registered.
 * Messages they answer (each reply carries the message's `seq`):
 *   {t: 'variant', variant}   controller: how its lane runs the durable path (see queue-path.ts)
 *   {t: 'script', script}     worker: what it answers every call from now on (fake-worker.ts Script)
 *   {t: 'submitted', ids}     controller: when the gateway submitted each of those requests (epoch ms, sub-ms
 *                             precision: performance.timeOrigin + now, comparable with the parent's), then
 *                             forgets them
 *   {t: 'cpu'}                both: the CPU time this process used so far (user + system, µs; all its threads),
 *                             and what its event loop and GC did since the last 'cpu' (Pauses)
 * `stop` (or the parent going away) stops it.
 */
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { silentLogger } from '../common/log.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';
import type { Lane } from '../controller/gateway/request-path.ts';
import { until } from '../test/helpers/until.ts';
import { FakeWorker, type Script } from '../test/integration/controller/fake-worker.ts';

export type Variant = 'log' | 'live' | 'local';

export type ServerRequest =
  | { seq: number; t: 'variant'; variant: Variant }
  | { seq: number; t: 'script'; script: Script }
  | { seq: number; t: 'submitted'; ids: string[] }
  | { seq: number; t: 'cpu' };

/** A process's event-loop delay (ms: p50, p99, max) and GC pauses (count, total and longest ms) over a span. */
export interface Pauses {
  loopDelayMs: { p50: number; p99: number; max: number };
  gc: { count: number; totalMs: number; maxMs: number };
}

export type ServerMessage =
  | { t: 'listening'; controller: string }
  | { t: 'ready'; controller?: string; worker?: string; engineId?: string }
  | {
      t: 'reply';
      seq: number;
      submittedAt?: Record<string, number>;
      cpuMicros?: number;
      pauses?: Pauses;
    };

export const WORKER_ID = 'bench-n1';

const send = (m: ServerMessage) => process.send?.(m);

/** Event-loop delay and GC pauses since the last read (each read starts the next span). */
function pauseMeter(): () => Pauses {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let gc = { count: 0, totalMs: 0, maxMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count += 1;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  return () => {
    const pauses = {
      loopDelayMs: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
      gc: {
        count: gc.count,
        totalMs: Math.round(gc.totalMs * 100) / 100,
        maxMs: Math.round(gc.maxMs * 100) / 100,
      },
    };
    loop.reset();
    gc = { count: 0, totalMs: 0, maxMs: 0 };
    return pauses;
  };
}

function cpuReply(seq: number, pauses: () => Pauses): ServerMessage {
  const used = process.cpuUsage();
  return { t: 'reply', seq, cpuMicros: used.user + used.system, pauses: pauses() };
}

async function controllerMain(configJson: string): Promise<void> {
  const pauses = pauseMeter();
  const config = compileControllerConfig(JSON.parse(configJson));
  const controller = await startController(config, { log: silentLogger, redisPrefix: `bench${process.pid}` });
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
    await controller.stop(1000);
    process.exit(0);
  };
  process.on('message', (m: ServerRequest | 'stop') => {
    if (m === 'stop') return void stop();
    if (m.t === 'cpu') return void send(cpuReply(m.seq, pauses));
    if (m.t === 'submitted') {
      const found: Record<string, number> = {};
      for (const id of m.ids) {
        const at = submittedAt.get(id);
        if (at !== undefined) found[id] = at;
        submittedAt.delete(id);
      }
      return void send({ t: 'reply', seq: m.seq, submittedAt: found });
    }
    if (m.t === 'variant') {
      lane.live = m.variant === 'log' ? undefined : shipped.live;
      lane.wake = m.variant === 'log' ? undefined : shipped.wake;
      lane.submit = m.variant === 'local' ? shipped.submit : undefined;
    }
    // Anything else ('script') is the worker's business.
    send({ t: 'reply', seq: m.seq });
  });
  process.on('disconnect', () => void stop());
  send({ t: 'listening', controller: controller.address });
  const engineId = await until(
    'the fake worker to report its engine',
    () => controller.registry.get(WORKER_ID)?.engines[0]?.engineId,
    10_000,
  );
  send({ t: 'ready', controller: controller.address, engineId });
}

async function workerMain(controllerAddress: string): Promise<void> {
  const pauses = pauseMeter();
  const worker = await FakeWorker.start(controllerAddress, WORKER_ID);
  await worker.register();
  // The fake keeps every call; do not let it grow for the whole run.
  setInterval(() => {
    worker.calls.length = 0;
  }, 1000).unref();
  const stop = async () => {
    await worker.stop();
    process.exit(0);
  };
  process.on('message', (m: ServerRequest | 'stop') => {
    if (m === 'stop') return void stop();
    if (m.t === 'cpu') return void send(cpuReply(m.seq, pauses));
    if (m.t === 'script') worker.script = m.script;
    send({ t: 'reply', seq: m.seq });
  });
  process.on('disconnect', () => void stop());
  send({ t: 'ready', worker: worker.address });
}

const [role, arg = '{}'] = process.argv.slice(2);
if (role === 'worker') await workerMain(arg);
else await controllerMain(arg);
