/**
 * `corral plan`: how a model could be split over an inventory of GPU nodes, ranked, with each plan's per-GPU
 * memory arithmetic and every refused shape's reason. Pure apart from reading --config when given, so the lead's
 * CLI wires it as `const r = runPlanCommand(argv); write r.stdout / r.stderr; exit r.exitCode`.
 *
 * Exit codes: 0 (even with no feasible plan: the answer is the list of reasons), 2 on bad arguments.
 */
import { readFileSync } from 'node:fs';
import { GiB } from '../common/hardware/memory.ts';
import { type Plan, plan } from '../controller/planner/plan.ts';
import { type PlanFields, type PlanRequest, parsePlanRequest } from '../controller/planner/plan-request.ts';
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

interface PlanCommand extends PlanRequest {
  json: boolean;
}

/** Validates every argument at once, so the user sees all the problems together. */
export function parsePlanArgs(values: Record<string, unknown>, read: ReadFile): PlanCommand {
  const r = parsePlanRequest(values as PlanFields, { fieldName: (f) => `--${f}`, readConfig: read });
  if (!r.ok) throw new UsageError(r.error.join('\n'));
  return { ...r.value, json: values.json === true };
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
  req: PlanCommand,
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
  let req: PlanCommand;
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
