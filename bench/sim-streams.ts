/**
 * CPU cost of the engine simulator under many concurrent streams (issue 3: 1,000 streams at time-scale 1 under
 * one core). Starts bin/corral-engine-sim, opens N streaming completions at once, reads them all to the end, and
 * reports the simulator process's CPU time (utime + stime from /proc) over the wall time of the run.
 *   node --import tsx bench/sim-streams.ts [--streams 1000] [--tokens 200] [--itl-ms 20] [--json]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    tokens: { type: 'string', default: '200' },
    'itl-ms': { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const streams = Number(values.streams);
const tokens = Number(values.tokens);
const itlMs = Number(values['itl-ms']);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** CPU seconds (user + system) of a process, from /proc/PID/stat (clock ticks, 100 per second on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const port = await freePort();
const bin = join(import.meta.dirname, '..', 'bin', 'corral-engine-sim');
const child = spawn(
  bin,
  ['serve', 'm', '--host', '127.0.0.1', '--port', String(port), '--max-num-seqs', String(streams)].concat([
    '--max-model-len',
    '4096',
    '--sim-startup-ms',
    '0',
    '--sim-ttft-ms',
    '50',
    '--sim-itl-ms',
    String(itlMs),
  ]),
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise<void>((resolve) => {
  child.stdout?.on('data', (d: Buffer) => {
    if (d.toString().includes('Application startup complete.')) resolve();
  });
});
const pid = child.pid ?? 0;
const agent = new Agent({ keepAlive: false, maxSockets: streams + 10 });
const cpu0 = cpuSeconds(pid);
const t0 = performance.now();
let received = 0;
await Promise.all(
  Array.from({ length: streams }, async (_, i) => {
    const body = JSON.stringify({
      model: 'm',
      prompt: `stream ${i}`,
      max_tokens: tokens,
      ignore_eos: true,
      stream: true,
    });
    await new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/completions',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.on('data', (d: Buffer) => {
            received += d.length;
          });
          res.on('end', resolve);
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }),
);
const wall = (performance.now() - t0) / 1000;
const cpu = cpuSeconds(pid) - cpu0;
child.kill('SIGTERM');
agent.destroy();
const result = {
  streams,
  tokens_per_stream: tokens,
  itl_ms: itlMs,
  wall_s: Number(wall.toFixed(2)),
  sim_cpu_s: Number(cpu.toFixed(2)),
  sim_cores: Number((cpu / wall).toFixed(3)),
  ideal_wall_s: Number(((50 + (tokens - 1) * itlMs) / 1000).toFixed(2)),
  tokens_per_s: Math.round((streams * tokens) / wall),
  bytes_received: received,
};
if (values.json) console.log(JSON.stringify(result));
else console.log(result);
