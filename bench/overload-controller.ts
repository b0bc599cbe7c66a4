/**
 * The controller under test of bench/overload.ts, in its own process so its memory is its own: started with
 * the config (JSON) in argv[2], it sends `{t: 'ready', address}` over IPC once serving, then every
 * sampleMs (argv[3]) `{t: 'sample', at, rssBytes, heapUsedBytes, cpuMs, requests, live}`: its RSS, V8 heap
 * and CPU time, and the per-request state it holds (requests running here, requests its live feeds track). A `stop` message (or
 * the parent going away) stops it.
 */
import { silentLogger } from '../common/log.ts';
import { compileControllerConfig } from '../controller/config/controller-config.ts';
import { startController } from '../controller/controller.ts';

export type ControllerMessage =
  | { t: 'ready'; address: string }
  | {
      t: 'sample';
      at: number;
      rssBytes: number;
      heapUsedBytes: number;
      /** CPU time (user + system) used so far, ms. */
      cpuMs: number;
      requests: number;
      live: number;
      /** First dispatches so far that had waited past queue.maxWaitMs (the dispatchers' count). */
      pastBound: number;
    };

async function main(): Promise<void> {
  const send = (m: ControllerMessage) => process.send?.(m);
  const config = compileControllerConfig(JSON.parse(process.argv[2] ?? '{}'));
  const sampleMs = Number(process.argv[3] ?? 1000);
  const controller = await startController(config, {
    log: silentLogger,
    redisPrefix: `overload${process.pid}`,
  });
  send({ t: 'ready', address: controller.address });
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    let live = 0;
    let pastBound = 0;
    for (const d of controller.lanes.dispatchers) pastBound += d.dispatchedPastBound();
    for (const lane of controller.lanes.lanes.values()) {
      const size = lane.live?.size;
      live += size ? size.runs + size.listened : 0;
    }
    send({
      t: 'sample',
      at: Date.now(),
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      cpuMs: (cpu.user + cpu.system) / 1000,
      requests: controller.requests.size,
      live,
      pastBound,
    });
  }, sampleMs);
  const stop = async () => {
    clearInterval(timer);
    await controller.stop(1000);
    process.exit(0);
  };
  process.on('message', (m) => {
    if (m === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
}

await main();
