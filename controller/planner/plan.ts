/**
 * The sharding planner: every way vLLM could split one replica of a model over an inventory of identical GPU
 * nodes, with each shape's per-GPU memory arithmetic, and either a ranked plan or the reason it cannot run.
 *
 * Shapes tried (vLLM's rules: tensor parallel inside a node, pipeline parallel across nodes):
 *   one node:  TP = t for t in 1, 2, 4, ... <= gpus_per_node (and gpus_per_node itself), PP = 1
 *   n nodes:   TP = gpus_per_node x PP = n, and TP = n * gpus_per_node across nodes (PP = 1) for comparison
 * A shape is valid when TP divides the attention heads and TP divides the KV heads or is a multiple of them
 * (vLLM's checks), it fits (weights + runtime reserve <= usable memory on every stage) and its KV cache holds
 * min_concurrency sequences of max_model_len tokens (vLLM refuses to start otherwise).
 * Ranking: fewer nodes; then TP inside nodes before TP across nodes (vLLM measured TP8 x PP2 6.6x faster than
 * TP16 without InfiniBand); then higher estimated decode throughput per GPU.
 */
import type { GpuType } from '../../common/hardware/gpu-catalog.ts';
import { defaultSchedulerLimits, groupMemory } from '../../common/hardware/group-memory.ts';
import { GiB, kvBytesPerTokenPerGpu, maxConcurrency } from '../../common/hardware/memory.ts';
import type { ModelRef, WeightDtype } from '../../common/hardware/model-shape.ts';
import { DEFAULT_INTER_NODE, type DecodeEstimate, estimateDecode, type InterNodeLink } from './cost-model.ts';

export interface Inventory {
  readonly nodes: number;
  readonly gpusPerNode: number;
  readonly gpu: GpuType;
  /** Defaults to DEFAULT_INTER_NODE (100 Gb/s Ethernet, no InfiniBand). */
  readonly interNode?: InterNodeLink;
}

export interface PlanConstraints {
  /** Default: the model's max_position_embeddings (131072 for Llama 3.1). */
  readonly maxModelLen?: number;
  /** Default 0.9, vLLM's. */
  readonly gpuMemoryUtilization?: number;
  /** Sequences of maxModelLen tokens the KV cache must hold at once. Default 1 (vLLM's start-up check). */
  readonly minConcurrency?: number;
  /** `auto` (default) keeps the KV cache in BF16, as vLLM's --kv-cache-dtype auto does. */
  readonly kvCacheDtype?: 'auto' | 'fp8';
  /** Mean tokens held per decoding sequence for the throughput estimate. Default min(2048, maxModelLen). */
  readonly estimateContext?: number;
}

export type DtypeChoice = WeightDtype | 'auto';

export interface PerGpuMemory {
  readonly total: number;
  readonly usable: number;
  readonly weights: number;
  readonly reserve: number;
  readonly kvCache: number;
}

export interface Plan {
  readonly model: string;
  readonly gpu: string;
  readonly tp: number;
  readonly pp: number;
  readonly nodes: number;
  readonly gpusPerNode: number;
  readonly dtype: WeightDtype;
  /** `fp8` when vLLM must quantize on load (`--quantization fp8`); null for BF16 or a pre-quantized checkpoint. */
  readonly quantization: 'fp8' | null;
  readonly kvCacheDtype: 'bf16' | 'fp8';
  readonly maxModelLen: number;
  readonly gpuMemoryUtilization: number;
  /** The limiting stage's memory, bytes. */
  readonly perGpu: PerGpuMemory;
  readonly kvTokens: number;
  readonly kvBlocks: number;
  /** Sequences of maxModelLen tokens the KV cache holds at once. */
  readonly maxConcurrency: number;
  /** Whole replicas of this plan the inventory can hold. */
  readonly replicas: number;
  readonly estimate: DecodeEstimate;
  /** Why this plan ranks where it does. */
  readonly notes: readonly string[];
}

export interface Rejected {
  readonly shape: string;
  readonly reason: string;
}

export interface PlanResult {
  readonly plans: Plan[];
  readonly rejected: Rejected[];
}

interface Shape {
  tp: number;
  pp: number;
  nodes: number;
}

const gib = (b: number) => `${(b / GiB).toFixed(1)} GiB`;

function shapesOf(inv: Inventory): Shape[] {
  const shapes: Shape[] = [];
  const tps = new Set<number>();
  for (let t = 1; t <= inv.gpusPerNode; t *= 2) tps.add(t);
  tps.add(inv.gpusPerNode);
  for (const tp of [...tps].sort((a, b) => a - b)) shapes.push({ tp, pp: 1, nodes: 1 });
  for (let n = 2; n <= inv.nodes; n++) {
    shapes.push({ tp: inv.gpusPerNode, pp: n, nodes: n });
    shapes.push({ tp: inv.gpusPerNode * n, pp: 1, nodes: n });
  }
  return shapes;
}

export function shapeLabel(dtype: WeightDtype, s: Shape): string {
  const core = s.pp > 1 ? `TP${s.tp}xPP${s.pp}` : `TP${s.tp}`;
  return `${dtype.toUpperCase()} ${core}${s.nodes > 1 ? ` (${s.nodes} nodes)` : ''}`;
}

export function plan(
  model: ModelRef,
  dtype: DtypeChoice,
  inv: Inventory,
  constraints: PlanConstraints = {},
): PlanResult {
  const m = model.shape;
  const maxModelLen = constraints.maxModelLen ?? m.maxPositions;
  const util = constraints.gpuMemoryUtilization ?? 0.9;
  const minConc = constraints.minConcurrency ?? 1;
  const kvCacheDtype = constraints.kvCacheDtype === 'fp8' ? 'fp8' : 'bf16';
  const context = constraints.estimateContext ?? Math.min(2048, maxModelLen);
  const interNode = inv.interNode ?? DEFAULT_INTER_NODE;
  const limits = defaultSchedulerLimits(inv.gpu);
  const gpuName = inv.gpu.name;

  const dtypes: WeightDtype[] = dtype === 'auto' ? ['bf16', 'fp8'] : [dtype];
  const plans: Plan[] = [];
  const rejected: Rejected[] = [];

  for (const dt of dtypes) {
    for (const s of shapesOf(inv)) {
      const label = shapeLabel(dt, s);
      const reject = (why: string) =>
        rejected.push({ shape: label, reason: `${label} on ${gpuName}: ${why}` });

      if (dt === 'bf16' && model.preQuantized === 'fp8') {
        reject(`the checkpoint ${model.name} is FP8; BF16 needs the BF16 checkpoint`);
        continue;
      }
      if (dt === 'fp8' && inv.gpu.fp8 === 'none') {
        reject('the GPU has no FP8 support in vLLM');
        continue;
      }
      if (m.heads % s.tp !== 0) {
        reject(`TP ${s.tp} does not divide the ${m.heads} attention heads`);
        continue;
      }
      if (m.kvHeads % s.tp !== 0 && s.tp % m.kvHeads !== 0) {
        reject(`TP ${s.tp} neither divides nor is a multiple of the ${m.kvHeads} KV heads`);
        continue;
      }
      if (s.pp > m.layers) {
        reject(`PP ${s.pp} exceeds the ${m.layers} layers`);
        continue;
      }

      const spec = {
        tp: s.tp,
        pp: s.pp,
        dtype: dt,
        fp8Scheme: model.fp8Scheme ?? (model.preQuantized === 'fp8' ? 'meta' : 'all-linear'),
        kvCacheDtype: kvCacheDtype as 'bf16' | 'fp8',
      };
      const g = groupMemory(m, inv.gpu, spec, { gpuMemoryUtilization: util, ...limits });
      const st = g.limiting;
      if (st.weights > st.usable) {
        reject(`${gib(st.weights)} weights per GPU > ${gib(st.usable)} usable`);
        continue;
      }
      if (st.kvCache <= 0) {
        reject(
          `${gib(st.weights)} weights + ${gib(st.reserve.total)} runtime reserve per GPU > ${gib(st.usable)} usable`,
        );
        continue;
      }
      const need = maxModelLen * minConc;
      if (g.kvTokens < need) {
        reject(
          `KV cache holds ${g.kvTokens.toLocaleString('en-US')} tokens (${gib(st.kvCache)} per GPU) < ` +
            `${minConc} x ${maxModelLen.toLocaleString('en-US')} (min concurrency x max-model-len)`,
        );
        continue;
      }

      const conc = maxConcurrency(g.kvTokens, maxModelLen);
      const batch = Math.min(limits.maxNumSeqs, Math.floor(g.kvTokens / context));
      const estimate = estimateDecode(
        {
          tp: s.tp,
          pp: s.pp,
          gpusPerNode: inv.gpusPerNode,
          hidden: m.hidden,
          layersPerStage: st.layers,
          weightsPerGpu: st.weights,
          kvBytesPerTokenPerGpu: kvBytesPerTokenPerGpu(m, st.layers, s.tp, kvCacheDtype),
          hbmBandwidth: inv.gpu.memoryBandwidth,
          intraNodeBandwidth: inv.gpu.interconnectBandwidth,
          interNode,
        },
        batch,
        context,
      );
      const gpusPerNode = Math.min(s.tp * s.pp, inv.gpusPerNode);
      plans.push({
        model: model.name,
        gpu: inv.gpu.id,
        tp: s.tp,
        pp: s.pp,
        nodes: s.nodes,
        gpusPerNode,
        dtype: dt,
        quantization: dt === 'fp8' && model.preQuantized !== 'fp8' ? 'fp8' : null,
        kvCacheDtype,
        maxModelLen,
        gpuMemoryUtilization: util,
        perGpu: {
          total: st.total,
          usable: st.usable,
          weights: st.weights,
          reserve: st.reserve.total,
          kvCache: st.kvCache,
        },
        kvTokens: g.kvTokens,
        kvBlocks: g.kvBlocks,
        maxConcurrency: conc,
        replicas:
          s.nodes === 1
            ? inv.nodes * Math.floor(inv.gpusPerNode / gpusPerNode)
            : Math.floor(inv.nodes / s.nodes),
        estimate,
        notes: [],
      });
    }
  }
  return { plans: rankPlans(plans, inv), rejected };
}

const crossNodeTp = (p: Plan, inv: Inventory) => p.tp > inv.gpusPerNode;

/** Orders plans best first and writes into each one's notes why it sits where it does. */
export function rankPlans(plans: readonly Plan[], inv: Inventory): Plan[] {
  const sorted = [...plans].sort(
    (a, b) =>
      a.nodes - b.nodes ||
      Number(crossNodeTp(a, inv)) - Number(crossNodeTp(b, inv)) ||
      b.estimate.tokensPerSecondPerGpu - a.estimate.tokensPerSecondPerGpu,
  );
  const fewestNodes = sorted[0]?.nodes ?? 1;
  return sorted.map((p, i) => {
    const notes: string[] = [];
    const perGpu = `${p.estimate.tokensPerSecondPerGpu.toFixed(0)} tok/s per GPU (estimate)`;
    if (i === 0) notes.push(`best: ${p.nodes} node${p.nodes > 1 ? 's' : ''}, ${perGpu}`);
    else if (p.nodes > fewestNodes)
      notes.push(`needs ${p.nodes} nodes where ${fewestNodes} suffice; ${perGpu}`);
    else notes.push(perGpu);
    if (crossNodeTp(p, inv)) {
      notes.push(
        `TP${p.tp} spans nodes, so every layer's two all-reduces cross the network: vLLM measured ` +
          `TP${inv.gpusPerNode}xPP${p.nodes} 6.6x faster than TP${p.tp} without InfiniBand; ranked below it`,
      );
    }
    if (p.dtype === 'fp8' && inv.gpu.fp8 === 'weight-only') {
      notes.push(`${inv.gpu.name} has no FP8 tensor cores: vLLM runs FP8 weight-only (Marlin), BF16 compute`);
    }
    if (p.maxConcurrency < 2) {
      notes.push(`KV cache holds only ${p.maxConcurrency.toFixed(2)} sequences of ${p.maxModelLen} tokens`);
    }
    return { ...p, notes };
  });
}
