/**
 * `corral plan`: how a model could be split over an inventory of GPU nodes, ranked, with each plan's per-GPU
 * memory arithmetic and every refused shape's reason. Pure apart from reading --config when given, so the lead's
 * CLI wires it as `const r = runPlanCommand(argv); write r.stdout / r.stderr; exit r.exitCode`.
 *
 * Exit codes: 0 (even with no feasible plan: the answer is the list of reasons), 2 on bad arguments.
 */
import { readFileSync } from 'node:fs';
import { GPU_IDS, lookupGpu } from '../common/hardware/gpu-catalog.ts';
import { parseHfConfig } from '../common/hardware/hf-config.ts';
import { GiB } from '../common/hardware/memory.ts';
import { BUILTIN_MODELS, type ModelRef, resolveBuiltinModel } from '../common/hardware/model-shape.ts';
import {
  type DtypeChoice,
  type Inventory,
  type Plan,
  type PlanConstraints,
  plan,
} from '../controller/planner/plan.ts';
import { vllmServeArgs } from '../controller/planner/serve-flags.ts';
import { type CommandSpec, parseCommand, UsageError } from './args.ts';
import { table } from './table.ts';

export const planSpec: CommandSpec = {
  usage:
    'corral plan --model NAME --gpus NODESxGPUSxTYPE [--dtype bf16|fp8|auto] [--max-model-len N] ' +
    '[--gpu-memory-utilization F] [--min-concurrency N] [--kv-cache-dtype auto|fp8] [--config config.json] [--json]',
  options: {
    model: { type: 'string' },
    gpus: { type: 'string' },
    dtype: { type: 'string' },
    'max-model-len': { type: 'string' },
    'gpu-memory-utilization': { type: 'string' },
    'min-concurrency': { type: 'string' },
    'kv-cache-dtype': { type: 'string' },
    config: { type: 'string' },
    json: { type: 'boolean' },
  },
};

export interface PlanCommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type ReadFile = (path: string) => string;

interface PlanRequest {
  model: ModelRef;
  dtype: DtypeChoice;
  inventory: Inventory;
  constraints: PlanConstraints;
  json: boolean;
}

function positiveInt(raw: unknown, flag: string, errors: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0)
    errors.push(`--${flag}: must be a positive integer, got '${String(raw)}'`);
  return n;
}

function resolveModel(name: string, configPath: string | undefined, read: ReadFile, errors: string[]) {
  if (configPath === undefined) {
    const ref = resolveBuiltinModel(name);
    if (!ref) {
      errors.push(
        `--model: '${name}' is not built in (${Object.keys(BUILTIN_MODELS).join(', ')}); give its --config`,
      );
    }
    return ref;
  }
  let json: unknown;
  try {
    json = JSON.parse(read(configPath));
  } catch (e) {
    errors.push(`--config: cannot read ${configPath}: ${(e as Error).message}`);
    return null;
  }
  const parsed = parseHfConfig(name, json);
  if (!parsed.ok) {
    for (const fe of parsed.error)
      errors.push(`--config: ${configPath}: ${fe.path || '(root)'}: ${fe.message}`);
    return null;
  }
  const suffixFp8 = name.toLowerCase().endsWith('-fp8');
  return {
    shape: parsed.value.shape,
    name,
    preQuantized: parsed.value.checkpointDtype === 'fp8' || suffixFp8 ? ('fp8' as const) : null,
    fp8Scheme: parsed.value.fp8Scheme,
  };
}

/** Validates every argument at once, so the user sees all the problems together. */
export function parsePlanArgs(values: Record<string, unknown>, read: ReadFile): PlanRequest {
  const errors: string[] = [];
  const modelName = values.model as string | undefined;
  if (!modelName) errors.push('--model: required (e.g. llama-3.1-405b)');
  const model = modelName ? resolveModel(modelName, values.config as string | undefined, read, errors) : null;

  const gpus = values.gpus as string | undefined;
  let inventory: Inventory | null = null;
  const g = gpus ? /^(\d+)x(\d+)x(.+)$/i.exec(gpus.trim()) : null;
  if (!gpus) errors.push('--gpus: required, NODESxGPUSxTYPE like 2x8xh100-80g');
  else if (!g) errors.push(`--gpus: expected NODESxGPUSxTYPE like 2x8xh100-80g, got '${gpus}'`);
  else {
    const nodes = Number(g[1]);
    const perNode = Number(g[2]);
    const gpu = lookupGpu(g[3] ?? '');
    if (nodes < 1 || perNode < 1) errors.push(`--gpus: node and GPU counts must be >= 1, got '${gpus}'`);
    if (!gpu) errors.push(`--gpus: unknown GPU type '${g[3]}' (known: ${GPU_IDS.join(', ')})`);
    if (gpu && nodes >= 1 && perNode >= 1) inventory = { nodes, gpusPerNode: perNode, gpu };
  }

  const rawDtype = (values.dtype as string | undefined)?.toLowerCase();
  let dtype: DtypeChoice = model?.preQuantized === 'fp8' ? 'fp8' : 'auto';
  if (rawDtype === 'bf16' || rawDtype === 'fp8' || rawDtype === 'auto') dtype = rawDtype;
  else if (rawDtype !== undefined) errors.push(`--dtype: must be bf16, fp8 or auto, got '${rawDtype}'`);

  const maxModelLen = positiveInt(values['max-model-len'], 'max-model-len', errors);
  if (model && maxModelLen !== undefined && maxModelLen > model.shape.maxPositions) {
    errors.push(`--max-model-len: ${maxModelLen} exceeds the model's ${model.shape.maxPositions} positions`);
  }
  const minConcurrency = positiveInt(values['min-concurrency'], 'min-concurrency', errors);
  const rawUtil = values['gpu-memory-utilization'];
  const util = rawUtil === undefined ? undefined : Number(rawUtil);
  if (util !== undefined && !(util > 0 && util <= 1)) {
    errors.push(`--gpu-memory-utilization: must be in (0, 1], got '${String(rawUtil)}'`);
  }
  const kvRaw = values['kv-cache-dtype'] as string | undefined;
  if (kvRaw !== undefined && kvRaw !== 'auto' && kvRaw !== 'fp8') {
    errors.push(`--kv-cache-dtype: must be auto or fp8, got '${kvRaw}'`);
  }

  if (errors.length > 0 || !model || !inventory) throw new UsageError(errors.join('\n'));
  return {
    model,
    dtype,
    inventory,
    constraints: {
      ...(maxModelLen !== undefined && { maxModelLen }),
      ...(minConcurrency !== undefined && { minConcurrency }),
      ...(util !== undefined && { gpuMemoryUtilization: util }),
      ...(kvRaw === 'fp8' && { kvCacheDtype: 'fp8' as const }),
    },
    json: values.json === true,
  };
}

const gib = (b: number) => Math.round((b / GiB) * 10) / 10;
const gibText = (b: number) => (b / GiB).toFixed(1);

/** The `--json` shape of a plan: snake_case, bytes and GiB, and the vLLM arguments of each node rank. */
export function planToJson(p: Plan): Record<string, unknown> {
  const { total, usable, weights, reserve, kvCache } = p.perGpu;
  return {
    model: p.model,
    gpu: p.gpu,
    tp: p.tp,
    pp: p.pp,
    nodes: p.nodes,
    gpus_per_node: p.gpusPerNode,
    dtype: p.dtype,
    quantization: p.quantization,
    kv_cache_dtype: p.kvCacheDtype,
    max_model_len: p.maxModelLen,
    gpu_memory_utilization: p.gpuMemoryUtilization,
    per_gpu: { total, usable, weights, reserve, kv_cache: kvCache },
    per_gpu_gib: {
      total: gib(total),
      usable: gib(usable),
      weights: gib(weights),
      reserve: gib(reserve),
      kv_cache: gib(kvCache),
    },
    kv_tokens: p.kvTokens,
    kv_blocks: p.kvBlocks,
    max_concurrency: Math.round(p.maxConcurrency * 100) / 100,
    replicas: p.replicas,
    estimate: {
      basis: 'datasheet HBM bandwidth x 0.75; not the calibrated simulator model',
      tpot_batch1_ms: Math.round(p.estimate.tpotBatch1Ms * 10) / 10,
      batch: p.estimate.batch,
      tpot_ms: Math.round(p.estimate.tpotMs * 10) / 10,
      tokens_per_s: Math.round(p.estimate.tokensPerSecond),
      tokens_per_s_per_gpu: Math.round(p.estimate.tokensPerSecondPerGpu),
    },
    notes: p.notes,
    vllm_args: vllmServeArgs(p, { masterAddr: '<rank-0-address>' }),
  };
}

export function formatPlans(
  req: PlanRequest,
  plans: readonly Plan[],
  rejected: readonly { reason: string }[],
) {
  const inv = req.inventory;
  const ctx = req.constraints.maxModelLen ?? req.model.shape.maxPositions;
  const head =
    `${req.model.name} (${req.dtype}) on ${inv.nodes}x${inv.gpusPerNode}x ${inv.gpu.name}, ` +
    `max-model-len ${ctx}, gpu-memory-utilization ${req.constraints.gpuMemoryUtilization ?? 0.9}\n\n`;
  const rows = plans.map((p, i) => [
    String(i + 1),
    `${p.dtype.toUpperCase()} ${p.pp > 1 ? `TP${p.tp}xPP${p.pp}` : `TP${p.tp}`}`,
    `${p.nodes}x${p.gpusPerNode}`,
    gibText(p.perGpu.usable),
    gibText(p.perGpu.weights),
    gibText(p.perGpu.reserve),
    gibText(p.perGpu.kvCache),
    p.kvTokens.toLocaleString('en-US'),
    `${p.maxConcurrency.toFixed(2)}x`,
    p.estimate.tpotBatch1Ms.toFixed(0),
    p.estimate.tokensPerSecondPerGpu.toFixed(0),
    p.notes.join('; '),
  ]);
  const planTable =
    plans.length === 0
      ? 'no feasible plan\n'
      : table(
          [
            '#',
            'SHAPE',
            'NODESxGPUS',
            'USABLE GiB',
            'WEIGHTS',
            'RESERVE',
            'KV GiB',
            'KV TOKENS',
            `CONC@${ctx}`,
            'TPOT1 ms*',
            'TOK/S/GPU*',
            'WHY',
          ],
          rows,
        );
  const rej =
    rejected.length === 0 ? '' : `\nrejected:\n${rejected.map((r) => `  ${r.reason}`).join('\n')}\n`;
  const foot =
    plans.length === 0
      ? ''
      : '\n* estimates from datasheet bandwidths, per GPU; the simulator is calibrated\n';
  return head + planTable + rej + foot;
}

export function runPlanCommand(
  argv: string[],
  read: ReadFile = (p) => readFileSync(p, 'utf8'),
): PlanCommandResult {
  let req: PlanRequest;
  try {
    req = parsePlanArgs(parseCommand(planSpec, argv).values, read);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const usage = e.message.includes('usage:') ? '' : `\nusage: ${planSpec.usage}`;
    return { exitCode: 2, stdout: '', stderr: `error: ${e.message}${usage}\n` };
  }
  const result = plan(req.model, req.dtype, req.inventory, req.constraints);
  const stdout = req.json
    ? `${JSON.stringify({ plans: result.plans.map(planToJson), rejected: result.rejected })}\n`
    : formatPlans(req, result.plans, result.rejected);
  return { exitCode: 0, stdout, stderr: '' };
}
