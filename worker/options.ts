/**
 * The worker's command line, compiled once into a fully resolved, validated WorkerConfig. Every problem is
 * collected and named by its flag (`--gpus: must be an integer >= 0, got "x"`), so one run shows them all.
 *
 *   --controller TARGET[,...]      the controller replicas' Registry service (required; repeatable or comma-separated):
 *                                  the worker registers with every replica, so each can route to every group.
 *                                  TARGET is HOST:PORT (one replica) or dns:///NAME:PORT (every address NAME
 *                                  resolves to, re-resolved every 5 s: a Kubernetes headless Service of the
 *                                  controller pods). A plain name behind one virtual IP reaches only one replica.
 *   --gpus N                       GPUs on this node (required; simulated nodes present any number)
 *   --gpu-type T                   e.g. h100-80g (required)
 *   --gpu-memory-gib N             per GPU; default read from the type's "-<N>g" suffix
 *   --node-name NAME               default: the host name
 *   --worker-id ID                 default: the node name (stable per pod)
 *   --listen HOST:PORT             the Worker gRPC service; default 127.0.0.1:0
 *   --advertise HOST:PORT          address the controller dials; default the bound listen address
 *   --engine sim|vllm              default sim
 *   --engine-command PATH          binary to run instead (still given `serve <args>`)
 *   --engine-host HOST             where engines bind (VLLM_HOST_IP); default 127.0.0.1
 *   --engine-api-key KEY           sent as Bearer token to engines started with --api-key
 *   --label K=V                    repeatable: topology labels
 *   --heartbeat-ms N               default 1000 (the controller's Welcome may override)
 *   --engine-start-timeout-ms N    default 600000: probes in the wild allow 10 minutes for 405B to load
 *   --engine-stop-grace-ms N       default 10000
 *   --drain-timeout-ms N           default 30000
 *   --max-restarts N               default 10 consecutive restarts before FAILED
 *   --restart-backoff-ms N         first restart delay, default 1000 (doubles up to 30000)
 */
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { err, type FieldError, ok, type Result } from '../common/errors.ts';
import { type ControllerTarget, parseControllerTarget } from './agent/controller-set.ts';
import type { EngineCommand } from './engine/launch-command.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SIM_ENGINE_PATH = join(REPO_ROOT, 'bin', 'corral-engine-sim');

export interface WorkerConfig {
  /** Every controller target, deduplicated, in the order given. */
  controllers: ControllerTarget[];
  gpus: { count: number; type: string; memoryBytes: number };
  nodeName: string;
  workerId: string;
  listen: { host: string; port: number };
  advertise: string | undefined;
  engine: EngineCommand & { kind: 'sim' | 'vllm' };
  engineHost: string;
  engineApiKey: string | undefined;
  labels: Record<string, string>;
  heartbeatMs: number;
  engineStartTimeoutMs: number;
  engineStopGraceMs: number;
  drainTimeoutMs: number;
  maxRestarts: number;
  restartBackoffMs: number;
}

const STRING_FLAGS = [
  'gpus',
  'gpu-type',
  'gpu-memory-gib',
  'node-name',
  'worker-id',
  'listen',
  'advertise',
  'engine',
  'engine-command',
  'engine-host',
  'engine-api-key',
  'heartbeat-ms',
  'engine-start-timeout-ms',
  'engine-stop-grace-ms',
  'drain-timeout-ms',
  'max-restarts',
  'restart-backoff-ms',
] as const;

const GIB = 1024 ** 3;

export function compileWorkerOptions(argv: readonly string[]): Result<WorkerConfig> {
  let values: Record<string, string | string[] | undefined>;
  try {
    const options: Record<string, { type: 'string'; multiple?: boolean }> = {
      label: { type: 'string', multiple: true },
      controller: { type: 'string', multiple: true },
    };
    for (const f of STRING_FLAGS) options[f] = { type: 'string' };
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false })
      .values as typeof values;
  } catch (e) {
    return err([{ path: 'argv', message: e instanceof Error ? e.message : String(e) }]);
  }
  const errors: FieldError[] = [];
  const str = (f: (typeof STRING_FLAGS)[number]) => values[f] as string | undefined;
  const int = (f: (typeof STRING_FLAGS)[number], def: number | undefined, min: number): number => {
    const raw = str(f);
    if (raw === undefined) {
      if (def === undefined) errors.push({ path: `--${f}`, message: 'is required' });
      return def ?? 0;
    }
    const v = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(v) || v < min) {
      errors.push({ path: `--${f}`, message: `must be an integer >= ${min}, got "${raw}"` });
      return def ?? 0;
    }
    return v;
  };

  const controllerFlags = [
    ...new Set(
      ((values.controller as string[] | undefined) ?? []).flatMap((c) => c.split(',')).map((c) => c.trim()),
    ),
  ];
  if (controllerFlags.length === 0) errors.push({ path: '--controller', message: 'is required (HOST:PORT)' });
  const controllers: ControllerTarget[] = [];
  for (const c of controllerFlags) {
    const target = parseControllerTarget(c, parseHostPort);
    if (target) controllers.push(target);
    else errors.push({ path: '--controller', message: `must be HOST:PORT or dns:///NAME:PORT, got "${c}"` });
  }

  const gpuCount = int('gpus', undefined, 0);
  const gpuType = str('gpu-type');
  if (gpuType === undefined || gpuType === '')
    errors.push({ path: '--gpu-type', message: 'is required (e.g. h100-80g)' });
  let memoryGib: number;
  if (str('gpu-memory-gib') !== undefined) memoryGib = int('gpu-memory-gib', 0, 1);
  else {
    const m = /-(\d+)g(b)?$/i.exec(gpuType ?? '');
    memoryGib = m?.[1] ? Number(m[1]) : 0;
    if (gpuType && !m) {
      errors.push({
        path: '--gpu-memory-gib',
        message: `is required: cannot infer it from --gpu-type "${gpuType}"`,
      });
    }
  }

  const listenRaw = str('listen') ?? '127.0.0.1:0';
  const listen = parseHostPort(listenRaw);
  if (!listen) errors.push({ path: '--listen', message: `must be HOST:PORT, got "${listenRaw}"` });
  const advertise = str('advertise');
  if (advertise !== undefined && !parseHostPort(advertise)) {
    errors.push({ path: '--advertise', message: `must be HOST:PORT, got "${advertise}"` });
  }

  const kind = str('engine') ?? 'sim';
  if (kind !== 'sim' && kind !== 'vllm')
    errors.push({ path: '--engine', message: `must be sim or vllm, got "${kind}"` });
  const engineCommand = str('engine-command');
  if (engineCommand === '') errors.push({ path: '--engine-command', message: 'must not be empty' });
  const command = engineCommand ?? (kind === 'vllm' ? 'vllm' : SIM_ENGINE_PATH);

  const labels: Record<string, string> = {};
  for (const [i, l] of ((values.label as string[] | undefined) ?? []).entries()) {
    const eq = l.indexOf('=');
    if (eq <= 0) errors.push({ path: `--label[${i}]`, message: `must be KEY=VALUE, got "${l}"` });
    else labels[l.slice(0, eq)] = l.slice(eq + 1);
  }

  const nodeName = str('node-name') ?? hostname();
  const config: WorkerConfig = {
    controllers,
    gpus: { count: gpuCount, type: gpuType ?? '', memoryBytes: memoryGib * GIB },
    nodeName,
    workerId: str('worker-id') ?? nodeName,
    listen: listen ?? { host: '127.0.0.1', port: 0 },
    advertise,
    engine: { kind: kind === 'vllm' ? 'vllm' : 'sim', command, prefixArgs: ['serve'] },
    engineHost: str('engine-host') ?? '127.0.0.1',
    engineApiKey: str('engine-api-key'),
    labels,
    heartbeatMs: int('heartbeat-ms', 1000, 50),
    engineStartTimeoutMs: int('engine-start-timeout-ms', 600_000, 100),
    engineStopGraceMs: int('engine-stop-grace-ms', 10_000, 0),
    drainTimeoutMs: int('drain-timeout-ms', 30_000, 0),
    maxRestarts: int('max-restarts', 10, 0),
    restartBackoffMs: int('restart-backoff-ms', 1000, 1),
  };
  if (config.workerId === '') errors.push({ path: '--worker-id', message: 'must not be empty' });
  return errors.length > 0 ? err(errors) : ok(config);
}

/** `host:port`, `[v6]:port`; port 0..65535. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(s.trim());
  if (!m?.[1] || !m[2]) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
