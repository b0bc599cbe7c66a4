/**
 * A plan request as people write it (`corral plan` flags, the Control.Plan RPC's fields): text in, a checked
 * PlanRequest out, or every problem at once. `fieldName` spells a field the caller's way (`--max-model-len` on
 * the command line, `max_model_len` over gRPC), so each error names what the user typed.
 */
import { err, ok, type Result } from '../../common/errors.ts';
import { GPU_IDS, lookupGpu } from '../../common/hardware/gpu-catalog.ts';
import { parseHfConfig } from '../../common/hardware/hf-config.ts';
import { BUILTIN_MODELS, type ModelRef, resolveBuiltinModel } from '../../common/hardware/model-shape.ts';
import type { DtypeChoice, Inventory, PlanConstraints } from './plan.ts';

export interface PlanRequest {
  model: ModelRef;
  dtype: DtypeChoice;
  inventory: Inventory;
  constraints: PlanConstraints;
}

/** The raw fields, keyed by their command-line names. */
export interface PlanFields {
  model?: string;
  /** NODESxGPUSxTYPE. */
  gpus?: string;
  dtype?: string;
  'max-model-len'?: unknown;
  'gpu-memory-utilization'?: unknown;
  'min-concurrency'?: unknown;
  'kv-cache-dtype'?: string;
  /** Path of a Hugging Face config.json for a model that is not built in (read with `readConfig`). */
  config?: string;
}

export interface PlanRequestOptions {
  fieldName: (field: keyof PlanFields) => string;
  /** Reads a --config file; absent: `config` is refused. */
  readConfig?: (path: string) => string;
  /** The inventory to plan over when `gpus` is empty; absent: `gpus` is required. */
  defaultInventory?: Inventory;
}

export function parsePlanRequest(f: PlanFields, o: PlanRequestOptions): Result<PlanRequest, string[]> {
  const errors: string[] = [];
  const name = o.fieldName;
  if (!f.model) errors.push(`${name('model')}: required (e.g. llama-3.1-405b)`);
  const model = f.model ? resolveModel(f.model, f.config, o, errors) : null;

  let inventory: Inventory | null = null;
  if (f.gpus) inventory = parseInventory(f.gpus, name('gpus'), errors);
  else if (o.defaultInventory) inventory = o.defaultInventory;
  else errors.push(`${name('gpus')}: required, NODESxGPUSxTYPE like 2x8xh100-80g`);

  const rawDtype = f.dtype?.toLowerCase() || undefined;
  let dtype: DtypeChoice = model?.preQuantized === 'fp8' ? 'fp8' : 'auto';
  if (rawDtype === 'bf16' || rawDtype === 'fp8' || rawDtype === 'auto') dtype = rawDtype;
  else if (rawDtype !== undefined)
    errors.push(`${name('dtype')}: must be bf16, fp8 or auto, got '${rawDtype}'`);

  const maxModelLen = positiveInt(f['max-model-len'], name('max-model-len'), errors);
  if (model && maxModelLen !== undefined && maxModelLen > model.shape.maxPositions) {
    errors.push(
      `${name('max-model-len')}: ${maxModelLen} exceeds the model's ${model.shape.maxPositions} positions`,
    );
  }
  const minConcurrency = positiveInt(f['min-concurrency'], name('min-concurrency'), errors);
  const rawUtil = f['gpu-memory-utilization'];
  const util = rawUtil === undefined ? undefined : Number(rawUtil);
  if (util !== undefined && !(util > 0 && util <= 1)) {
    errors.push(`${name('gpu-memory-utilization')}: must be in (0, 1], got '${String(rawUtil)}'`);
  }
  const kvRaw = f['kv-cache-dtype'] || undefined;
  if (kvRaw !== undefined && kvRaw !== 'auto' && kvRaw !== 'fp8') {
    errors.push(`${name('kv-cache-dtype')}: must be auto or fp8, got '${kvRaw}'`);
  }

  if (errors.length > 0 || !model || !inventory) return err(errors);
  return ok({
    model,
    dtype,
    inventory,
    constraints: {
      ...(maxModelLen !== undefined && { maxModelLen }),
      ...(minConcurrency !== undefined && { minConcurrency }),
      ...(util !== undefined && { gpuMemoryUtilization: util }),
      ...(kvRaw === 'fp8' && { kvCacheDtype: 'fp8' as const }),
    },
  });
}

/** `2x8xh100-80g` -> 2 nodes of 8 H100-80G. */
function parseInventory(text: string, field: string, errors: string[]): Inventory | null {
  const g = /^(\d+)x(\d+)x(.+)$/i.exec(text.trim());
  if (!g) {
    errors.push(`${field}: expected NODESxGPUSxTYPE like 2x8xh100-80g, got '${text}'`);
    return null;
  }
  const nodes = Number(g[1]);
  const perNode = Number(g[2]);
  const gpu = lookupGpu(g[3] ?? '');
  if (nodes < 1 || perNode < 1) errors.push(`${field}: node and GPU counts must be >= 1, got '${text}'`);
  if (!gpu) errors.push(`${field}: unknown GPU type '${g[3]}' (known: ${GPU_IDS.join(', ')})`);
  return gpu && nodes >= 1 && perNode >= 1 ? { nodes, gpusPerNode: perNode, gpu } : null;
}

function positiveInt(raw: unknown, field: string, errors: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0)
    errors.push(`${field}: must be a positive integer, got '${String(raw)}'`);
  return n;
}

function resolveModel(
  modelName: string,
  configPath: string | undefined,
  o: PlanRequestOptions,
  errors: string[],
): ModelRef | null {
  const name = o.fieldName;
  if (configPath === undefined) {
    const ref = resolveBuiltinModel(modelName);
    if (!ref) {
      errors.push(
        `${name('model')}: '${modelName}' is not built in (${Object.keys(BUILTIN_MODELS).join(', ')}); give its ${name('config')}`,
      );
    }
    return ref;
  }
  if (!o.readConfig) {
    errors.push(`${name('config')}: not accepted here`);
    return null;
  }
  let json: unknown;
  try {
    json = JSON.parse(o.readConfig(configPath));
  } catch (e) {
    errors.push(`${name('config')}: cannot read ${configPath}: ${(e as Error).message}`);
    return null;
  }
  const parsed = parseHfConfig(modelName, json);
  if (!parsed.ok) {
    for (const fe of parsed.error)
      errors.push(`${name('config')}: ${configPath}: ${fe.path || '(root)'}: ${fe.message}`);
    return null;
  }
  const suffixFp8 = modelName.toLowerCase().endsWith('-fp8');
  return {
    shape: parsed.value.shape,
    name: modelName,
    preQuantized: parsed.value.checkpointDtype === 'fp8' || suffixFp8 ? ('fp8' as const) : null,
    fp8Scheme: parsed.value.fp8Scheme,
  };
}
