/**
 * The controller's deployments file: options (what a person writes, YAML or JSON) -> compile -> Compiled (every
 * default resolved, durations in ms). Validation collects every problem with its path, so a bad file is fixed in
 * one go rather than one error per restart.
 *
 * Shape and defaults:
 *   listen: 127.0.0.1:7070          # host:port of the gRPC server; `--listen` overrides it
 *   heartbeatIntervalMs: 1000       # told to workers in Welcome
 *   workerTimeoutMs: 3000           # no message from a worker for this long = worker lost (> heartbeatIntervalMs)
 *   groups:                         # how the controller heals groups (one replica = one group of nodes)
 *     maxRestarts: 3                # rebuilds after a failure before the group is `failed` (reason in status)
 *     backoffBaseMs: 1000           # rebuild k waits min(base * 2^(k-1), max)
 *     backoffMaxMs: 30000
 *     startTimeoutMs: 900000        # launch to ready; probes in the wild allow 10 minutes for 405B to load
 *     masterPortBase: 29500         # group g's ranks meet on --master-port base + g (groups may share a host)
 *   redis: redis://127.0.0.1:6379   # the durable queue's and stream logs' store (required; `--redis` overrides)
 *   queue:                          # the durable request path (controller/dispatch/, controller/queue/)
 *     leaseMs: 5000                 # a dispatched request stays with its controller this long without a renewal;
 *                                   # a controller that dies loses its requests to another within this
 *     maxAttempts: 3                # dispatches (first + continuations after failures) before a request fails
 *     maxWaitMs: 60000              # shed new requests expected to wait longer than 90% of this
 *     maxDepth: 10000               # shed new requests when this many wait ahead of them
 *     serviceMs: (per deployment)   # how long one request holds a sequence, assumed until the queue has
 *                                   # measured its drain rate (it expects ready groups x maxNumSeqs per serviceMs);
 *                                   # unset: 6 s + defaultMaxTokens x 175 ms, MLPerf's 405B p99 TTFT and TPOT
 *                                   # bounds (dispatch/service-time.ts; 50.8 s at defaults); set: every deployment
 *     detachGraceMs: 5000           # a request outlives its client's disconnect this long (time to Resume)
 *     noGroupGraceMs: 10000         # queued requests of a deployment with no ready or starting group fail after
 *   batch: {}                       # offline batches: limits, retention, feeding (controller/batch/batch-config.ts)
 *   deployments:                    # at least one; names unique
 *     - name: llama-3.1-8b-instruct # the model name clients use (vLLM --served-model-name); [a-z0-9._-]
 *       model: meta-llama/Llama-3.1-8B-Instruct   # what the engine loads (first `vllm serve` argument)
 *       replicas: 1                 # groups; a single-node group is one engine, at most one per worker
 *       tensorParallel: 1           # --tensor-parallel-size: GPUs per node of a group (TP stays inside a node)
 *       pipelineParallel: 1         # --pipeline-parallel-size: nodes per group (PP goes across nodes)
 *       gpusPerReplica: 1           # single-node shorthand for tensorParallel; with both, must be TP x PP
 *       gpuType: h100-80g           # only workers reporting this GPU type (default: any)
 *       topologyKey: rack           # the nodes of a group share this worker label's value (default: any)
 *       quantization: fp8           # --quantization fp8 (quantize BF16 weights on load); default none
 *       plan: {gpus: 2x8xh100-80g, dtype: bf16}   # instead of the four above: the planner's best plan for this
 *                                   # node shape (auto-plan.ts); maxModelLen/gpuMemoryUtilization constrain it
 *       maxModelLen: 8192           # --max-model-len; the gateway checks prompt + max_tokens against it
 *       maxNumSeqs: 256             # --max-num-seqs
 *       gpuMemoryUtilization: 0.9   # --gpu-memory-utilization, in (0, 1]
 *       defaultMaxTokens: 256       # max_tokens when a request leaves it unset (clamped to the context left)
 *       maxPromptBytes: 1048576     # bigger prompts (UTF-8 bytes, all chat contents together): RESOURCE_EXHAUSTED
 *       engineArgs: []              # extra flags appended to the engine's arguments
 *       engineEnv: {}               # extra environment for the engine
 */
import { type FieldError, ValidationError } from '../../common/errors.ts';
import { type BatchConfig, compileBatchConfig } from '../batch/batch-config.ts';
import { resolveAutoPlan } from './auto-plan.ts';

export interface DeploymentOptions {
  name?: unknown;
  model?: unknown;
  replicas?: unknown;
  gpusPerReplica?: unknown;
  maxModelLen?: unknown;
  maxNumSeqs?: unknown;
  gpuMemoryUtilization?: unknown;
  defaultMaxTokens?: unknown;
  maxPromptBytes?: unknown;
  tensorParallel?: unknown;
  pipelineParallel?: unknown;
  gpuType?: unknown;
  topologyKey?: unknown;
  quantization?: unknown;
  plan?: unknown;
  engineArgs?: unknown;
  engineEnv?: unknown;
}

export interface ControllerOptions {
  listen?: unknown;
  heartbeatIntervalMs?: unknown;
  workerTimeoutMs?: unknown;
  groups?: unknown;
  redis?: unknown;
  queue?: unknown;
  batch?: unknown;
  deployments?: unknown;
}

export interface Deployment {
  readonly name: string;
  readonly model: string;
  /** Groups wanted. */
  readonly replicas: number;
  /** GPUs of one group on all its nodes: tensorParallel x pipelineParallel. */
  readonly gpusPerReplica: number;
  readonly tensorParallel: number;
  readonly pipelineParallel: number;
  /** Nodes per group (= pipelineParallel) and GPUs each of them gives the group (= tensorParallel). */
  readonly nodes: number;
  readonly gpusPerNode: number;
  readonly gpuType?: string;
  readonly topologyKey?: string;
  readonly quantization?: 'fp8';
  /** Set when `plan:` chose the shape: what the planner picked, for the log. */
  readonly planSummary?: string;
  readonly maxModelLen: number;
  readonly maxNumSeqs: number;
  readonly gpuMemoryUtilization: number;
  readonly defaultMaxTokens: number;
  readonly maxPromptBytes: number;
  readonly engineArgs: readonly string[];
  readonly engineEnv: Readonly<Record<string, string>>;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface GroupsConfig {
  readonly maxRestarts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly startTimeoutMs: number;
  readonly masterPortBase: number;
}

export interface QueueConfig {
  readonly leaseMs: number;
  readonly maxAttempts: number;
  readonly maxWaitMs: number;
  readonly maxDepth: number;
  /** Undefined: derived per deployment (dispatch/service-time.ts). */
  readonly serviceMs: number | undefined;
  readonly detachGraceMs: number;
  readonly noGroupGraceMs: number;
}

export interface ControllerConfig {
  readonly listen: ListenAddress;
  /** Redis URL; undefined until given by the file or `--redis` (the controller refuses to start without). */
  readonly redis: string | undefined;
  readonly queue: QueueConfig;
  readonly batch: BatchConfig;
  readonly heartbeatIntervalMs: number;
  readonly workerTimeoutMs: number;
  readonly groups: GroupsConfig;
  readonly deployments: readonly Deployment[];
}

export const CONTROLLER_DEFAULTS = {
  listen: '127.0.0.1:7070',
  heartbeatIntervalMs: 1000,
  workerTimeoutMs: 3000,
} as const;

export const GROUPS_DEFAULTS: GroupsConfig = {
  maxRestarts: 3,
  backoffBaseMs: 1000,
  backoffMaxMs: 30_000,
  startTimeoutMs: 900_000,
  masterPortBase: 29500,
};

export const QUEUE_DEFAULTS: QueueConfig = {
  leaseMs: 5000,
  maxAttempts: 3,
  maxWaitMs: 60_000,
  maxDepth: 10_000,
  serviceMs: undefined,
  detachGraceMs: 5000,
  noGroupGraceMs: 10_000,
};

export const DEPLOYMENT_DEFAULTS = {
  replicas: 1,
  gpusPerReplica: 1,
  maxModelLen: 8192,
  maxNumSeqs: 256,
  gpuMemoryUtilization: 0.9,
  defaultMaxTokens: 256,
  maxPromptBytes: 1024 * 1024,
} as const;

const DEPLOYMENT_KEYS = new Set<string>([
  'name',
  'model',
  ...Object.keys(DEPLOYMENT_DEFAULTS),
  'tensorParallel',
  'pipelineParallel',
  'gpuType',
  'topologyKey',
  'quantization',
  'plan',
  'engineArgs',
  'engineEnv',
]);
const TOP_KEYS = new Set<string>([
  ...Object.keys(CONTROLLER_DEFAULTS),
  'groups',
  'deployments',
  'redis',
  'queue',
  'batch',
]);
// Deployment names become engine ids and vLLM's --served-model-name; keep them to what both accept unquoted.
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
// The worker adds these itself (it owns ports and the bind address); passing them would fight it.
// The controller sets the parallelism and multi-node flags from tensorParallel/pipelineParallel per rank.
const RESERVED_ENGINE_FLAGS = [
  '--host',
  '--port',
  '--tensor-parallel-size',
  '--pipeline-parallel-size',
  '--nnodes',
  '--node-rank',
  '--master-addr',
  '--master-port',
  '--headless',
];

/** Parses `host:port` (`[::1]:7070` for IPv6); port 0 asks the OS for a free one. */
export function parseListen(value: string): ListenAddress | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || !Number.isInteger(port) || port > 65535) return 'must be host:port with a port in 0..65535';
  return { host, port };
}

export function compileControllerConfig(input: unknown): ControllerConfig {
  const errors: FieldError[] = [];
  const at = (path: string, message: string) => errors.push({ path, message });
  if (!isRecord(input))
    throw new ValidationError('controller config', [{ path: '(root)', message: 'must be a mapping' }]);
  const o = input as ControllerOptions & Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.has(k)) at(k, 'unknown field');

  let listen: ListenAddress = { host: '127.0.0.1', port: 7070 };
  const listenRaw = o.listen ?? CONTROLLER_DEFAULTS.listen;
  if (typeof listenRaw !== 'string') at('listen', 'must be a string host:port');
  else {
    const parsed = parseListen(listenRaw);
    if (typeof parsed === 'string') at('listen', parsed);
    else listen = parsed;
  }
  const heartbeatIntervalMs = positiveInt(
    o.heartbeatIntervalMs,
    CONTROLLER_DEFAULTS.heartbeatIntervalMs,
    'heartbeatIntervalMs',
    at,
  );
  const workerTimeoutMs = positiveInt(
    o.workerTimeoutMs,
    CONTROLLER_DEFAULTS.workerTimeoutMs,
    'workerTimeoutMs',
    at,
  );
  if (workerTimeoutMs <= heartbeatIntervalMs)
    at('workerTimeoutMs', `must be greater than heartbeatIntervalMs (${heartbeatIntervalMs})`);
  const groups = compileGroups(o.groups, at);
  const queue = compileQueue(o.queue, at);
  const batch = compileBatchConfig(o.batch, errors);
  let redis: string | undefined;
  if (o.redis !== undefined) {
    if (typeof o.redis !== 'string' || !/^rediss?:\/\//.test(o.redis))
      at('redis', 'must be a redis:// or rediss:// URL');
    else redis = o.redis;
  }

  const deployments: Deployment[] = [];
  if (!Array.isArray(o.deployments) || o.deployments.length === 0) {
    at('deployments', 'must be a non-empty list');
  } else {
    const seen = new Map<string, number>();
    o.deployments.forEach((raw: unknown, i: number) => {
      const d = compileDeployment(raw, `deployments[${i}]`, at);
      if (!d) return;
      const first = seen.get(d.name);
      if (first !== undefined)
        at(`deployments[${i}].name`, `duplicate of deployments[${first}].name (${d.name})`);
      else seen.set(d.name, i);
      deployments.push(d);
    });
  }
  if (errors.length > 0) throw new ValidationError('controller config', errors);
  return { listen, redis, queue, batch, heartbeatIntervalMs, workerTimeoutMs, groups, deployments };
}

function compileQueue(raw: unknown, at: (path: string, message: string) => void): QueueConfig {
  if (raw === undefined) return QUEUE_DEFAULTS;
  if (!isRecord(raw)) {
    at('queue', 'must be a mapping');
    return QUEUE_DEFAULTS;
  }
  const Q = QUEUE_DEFAULTS;
  for (const k of Object.keys(raw)) if (!(k in Q)) at(`queue.${k}`, 'unknown field');
  const n = (k: Exclude<keyof QueueConfig, 'serviceMs'>) => positiveInt(raw[k], Q[k], `queue.${k}`, at);
  return {
    leaseMs: n('leaseMs'),
    maxAttempts: n('maxAttempts'),
    maxWaitMs: n('maxWaitMs'),
    maxDepth: n('maxDepth'),
    // Unset: derived per deployment (dispatch/service-time.ts); a bad value is reported, never used.
    serviceMs: raw.serviceMs === undefined ? undefined : positiveInt(raw.serviceMs, 1, 'queue.serviceMs', at),
    detachGraceMs: nonNegativeInt(raw.detachGraceMs, Q.detachGraceMs, 'queue.detachGraceMs', at),
    noGroupGraceMs: nonNegativeInt(raw.noGroupGraceMs, Q.noGroupGraceMs, 'queue.noGroupGraceMs', at),
  };
}

function compileGroups(raw: unknown, at: (path: string, message: string) => void): GroupsConfig {
  if (raw === undefined) return GROUPS_DEFAULTS;
  if (!isRecord(raw)) {
    at('groups', 'must be a mapping');
    return GROUPS_DEFAULTS;
  }
  const G = GROUPS_DEFAULTS;
  for (const k of Object.keys(raw)) if (!(k in G)) at(`groups.${k}`, 'unknown field');
  const maxRestarts = nonNegativeInt(raw.maxRestarts, G.maxRestarts, 'groups.maxRestarts', at);
  const backoffBaseMs = positiveInt(raw.backoffBaseMs, G.backoffBaseMs, 'groups.backoffBaseMs', at);
  const backoffMaxMs = positiveInt(raw.backoffMaxMs, G.backoffMaxMs, 'groups.backoffMaxMs', at);
  const startTimeoutMs = positiveInt(raw.startTimeoutMs, G.startTimeoutMs, 'groups.startTimeoutMs', at);
  const masterPortBase = positiveInt(raw.masterPortBase, G.masterPortBase, 'groups.masterPortBase', at);
  if (backoffMaxMs < backoffBaseMs)
    at('groups.backoffMaxMs', `must be >= groups.backoffBaseMs (${backoffBaseMs})`);
  // Group ordinals are added to the base; leave room for a few thousand groups below 65535.
  if (masterPortBase < 1024 || masterPortBase > 60_000) at('groups.masterPortBase', 'must be in 1024..60000');
  return { maxRestarts, backoffBaseMs, backoffMaxMs, startTimeoutMs, masterPortBase };
}

function compileDeployment(
  raw: unknown,
  path: string,
  at: (path: string, message: string) => void,
): Deployment | undefined {
  if (!isRecord(raw)) {
    at(path, 'must be a mapping');
    return undefined;
  }
  const o = raw as DeploymentOptions & Record<string, unknown>;
  for (const k of Object.keys(o)) if (!DEPLOYMENT_KEYS.has(k)) at(`${path}.${k}`, 'unknown field');
  let name = '';
  if (typeof o.name !== 'string' || o.name === '') at(`${path}.name`, 'is required (a non-empty string)');
  else if (!NAME_PATTERN.test(o.name))
    at(`${path}.name`, 'must start with a lowercase letter or digit and contain only a-z 0-9 . _ -');
  else name = o.name;
  let model = '';
  if (typeof o.model !== 'string' || o.model.trim() === '')
    at(`${path}.model`, 'is required (a non-empty string)');
  else model = o.model;

  const D = DEPLOYMENT_DEFAULTS;
  const replicas = nonNegativeInt(o.replicas, D.replicas, `${path}.replicas`, at);
  const shorthand = positiveInt(o.gpusPerReplica, D.gpusPerReplica, `${path}.gpusPerReplica`, at);
  let tensorParallel = positiveInt(o.tensorParallel, shorthand, `${path}.tensorParallel`, at);
  let pipelineParallel = positiveInt(o.pipelineParallel, 1, `${path}.pipelineParallel`, at);
  if (
    o.gpusPerReplica !== undefined &&
    o.tensorParallel !== undefined &&
    shorthand !== tensorParallel * pipelineParallel
  )
    at(
      `${path}.gpusPerReplica`,
      `must equal tensorParallel x pipelineParallel (${tensorParallel * pipelineParallel}) when both are given`,
    );
  if (o.gpusPerReplica !== undefined && o.tensorParallel === undefined && o.pipelineParallel !== undefined)
    at(`${path}.gpusPerReplica`, 'is the single-node shorthand; with pipelineParallel give tensorParallel');
  let gpuType = optionalName(o.gpuType, `${path}.gpuType`, at);
  const topologyKey = optionalName(o.topologyKey, `${path}.topologyKey`, at);
  let quantization: 'fp8' | undefined;
  if (o.quantization !== undefined) {
    if (o.quantization !== 'fp8') at(`${path}.quantization`, 'must be fp8 (or left out)');
    else quantization = 'fp8';
  }
  const maxModelLen = positiveInt(o.maxModelLen, D.maxModelLen, `${path}.maxModelLen`, at);
  const maxNumSeqs = positiveInt(o.maxNumSeqs, D.maxNumSeqs, `${path}.maxNumSeqs`, at);
  const defaultMaxTokens = positiveInt(
    o.defaultMaxTokens,
    D.defaultMaxTokens,
    `${path}.defaultMaxTokens`,
    at,
  );
  const maxPromptBytes = positiveInt(o.maxPromptBytes, D.maxPromptBytes, `${path}.maxPromptBytes`, at);
  if (defaultMaxTokens >= maxModelLen)
    at(`${path}.defaultMaxTokens`, `must be less than maxModelLen (${maxModelLen})`);

  let gpuMemoryUtilization: number = D.gpuMemoryUtilization;
  if (o.gpuMemoryUtilization !== undefined) {
    const v = o.gpuMemoryUtilization;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1)
      at(`${path}.gpuMemoryUtilization`, 'must be a number in (0, 1]');
    else gpuMemoryUtilization = v;
  }

  let planSummary: string | undefined;
  if (o.plan !== undefined) {
    for (const k of ['gpusPerReplica', 'tensorParallel', 'pipelineParallel', 'gpuType', 'quantization'])
      if (o[k] !== undefined) at(`${path}.${k}`, 'cannot be given with plan (the planner chooses it)');
    if (model) {
      const r = resolveAutoPlan(o.plan, model, { maxModelLen, gpuMemoryUtilization });
      if (Array.isArray(r)) for (const [sub, message] of r) at(`${path}.plan${sub}`, message);
      else {
        ({ tensorParallel, pipelineParallel, gpuType, quantization } = r);
        planSummary = r.summary;
      }
    }
  }
  const gpusPerReplica = tensorParallel * pipelineParallel;

  const engineArgs: string[] = [];
  if (o.engineArgs !== undefined) {
    if (!Array.isArray(o.engineArgs)) at(`${path}.engineArgs`, 'must be a list of strings');
    else
      o.engineArgs.forEach((a: unknown, j: number) => {
        if (typeof a !== 'string') at(`${path}.engineArgs[${j}]`, 'must be a string (quote numbers)');
        else if (RESERVED_ENGINE_FLAGS.some((f) => a === f || a.startsWith(`${f}=`)))
          at(
            `${path}.engineArgs[${j}]`,
            a.startsWith('--host') || a.startsWith('--port')
              ? `${a} is set by the worker and cannot be passed`
              : `${a} is set by the controller from tensorParallel/pipelineParallel and cannot be passed`,
          );
        else engineArgs.push(a);
      });
  }
  const engineEnv: Record<string, string> = {};
  if (o.engineEnv !== undefined) {
    if (!isRecord(o.engineEnv)) at(`${path}.engineEnv`, 'must be a mapping of strings');
    else
      for (const [k, v] of Object.entries(o.engineEnv)) {
        if (typeof v !== 'string') at(`${path}.engineEnv.${k}`, 'must be a string (quote numbers)');
        else engineEnv[k] = v;
      }
  }
  return {
    name,
    model,
    replicas,
    gpusPerReplica,
    tensorParallel,
    pipelineParallel,
    nodes: pipelineParallel,
    gpusPerNode: tensorParallel,
    ...(gpuType ? { gpuType } : {}),
    ...(topologyKey ? { topologyKey } : {}),
    ...(quantization ? { quantization } : {}),
    ...(planSummary ? { planSummary } : {}),
    maxModelLen,
    maxNumSeqs,
    gpuMemoryUtilization,
    defaultMaxTokens,
    maxPromptBytes,
    engineArgs,
    engineEnv,
  };
}

function positiveInt(v: unknown, dflt: number, path: string, at: (p: string, m: string) => void): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    at(path, 'must be a positive integer');
    return dflt;
  }
  return v;
}

function nonNegativeInt(v: unknown, dflt: number, path: string, at: (p: string, m: string) => void): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    at(path, 'must be a non-negative integer');
    return dflt;
  }
  return v;
}

function optionalName(v: unknown, path: string, at: (p: string, m: string) => void): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.trim() === '') {
    at(path, 'must be a non-empty string');
    return undefined;
  }
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
