/**
 * GPU types corral plans for. Ids are what workers report (`--gpu-type h100-80g`), matched case-insensitively.
 *
 * memoryBytes is the device memory the driver reports as total (nvidia-smi / torch.cuda.mem_get_info), which is
 * what vLLM multiplies by --gpu-memory-utilization; it is a little below the marketed figure for some parts
 * (an "80GB" H100 SXM reports 81559 MiB). Bandwidths are the vendor's peak figures; real kernels reach ~70-90%.
 */

export type InterconnectKind = 'nvlink3' | 'nvlink4' | 'nvlink5' | 'infinity-fabric' | 'pcie4';

/** native: FP8 tensor cores (W8A8); weight-only: vLLM's FP8 Marlin kernels (memory saving, BF16 compute). */
export type Fp8Support = 'native' | 'weight-only' | 'none';

export interface GpuType {
  readonly id: string;
  readonly name: string;
  readonly memoryBytes: number;
  /** Peak HBM/GDDR bandwidth, bytes/s. */
  readonly memoryBandwidth: number;
  readonly interconnect: InterconnectKind;
  /** Peak per-GPU bandwidth to its peers inside a node, bytes/s (all links, one direction). */
  readonly interconnectBandwidth: number;
  readonly fp8: Fp8Support;
}

const MiB = 1024 ** 2;
const GB = 1e9;
const TB = 1e12;

export const GPU_TYPES: readonly GpuType[] = [
  {
    // NVIDIA H100 Tensor Core GPU datasheet (SXM5): 80 GB HBM3, 3.35 TB/s, NVLink 900 GB/s; FP8 Transformer Engine.
    id: 'h100-80g',
    name: 'H100-80G',
    memoryBytes: 81559 * MiB,
    memoryBandwidth: 3.35 * TB,
    interconnect: 'nvlink4',
    interconnectBandwidth: 900 * GB,
    fp8: 'native',
  },
  {
    // NVIDIA H200 datasheet (SXM): 141 GB HBM3e, 4.8 TB/s, NVLink 900 GB/s. nvidia-smi reports 143771 MiB.
    id: 'h200-141g',
    name: 'H200-141G',
    memoryBytes: 143771 * MiB,
    memoryBandwidth: 4.8 * TB,
    interconnect: 'nvlink4',
    interconnectBandwidth: 900 * GB,
    fp8: 'native',
  },
  {
    // NVIDIA A100 datasheet (SXM4 80GB): 80 GB HBM2e, 2,039 GB/s, NVLink 600 GB/s. Ampere has no FP8 tensor
    // cores; vLLM serves FP8 checkpoints there as weight-only FP8 (Marlin), per vLLM's quantization docs.
    id: 'a100-80g',
    name: 'A100-80G',
    memoryBytes: 81920 * MiB,
    memoryBandwidth: 2.039 * TB,
    interconnect: 'nvlink3',
    interconnectBandwidth: 600 * GB,
    fp8: 'weight-only',
  },
  {
    // NVIDIA A100 datasheet (SXM4 40GB): 40 GB HBM2, 1,555 GB/s, NVLink 600 GB/s.
    id: 'a100-40g',
    name: 'A100-40G',
    memoryBytes: 40960 * MiB,
    memoryBandwidth: 1.555 * TB,
    interconnect: 'nvlink3',
    interconnectBandwidth: 600 * GB,
    fp8: 'weight-only',
  },
  {
    // NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, PCIe Gen4 x16 (64 GB/s), no NVLink; Ada FP8 tensor cores.
    id: 'l40s-48g',
    name: 'L40S-48G',
    memoryBytes: 46068 * MiB,
    memoryBandwidth: 864 * GB,
    interconnect: 'pcie4',
    interconnectBandwidth: 64 * GB,
    fp8: 'native',
  },
  {
    // AMD Instinct MI300X datasheet: 192 GB HBM3, 5.3 TB/s, Infinity Fabric 7 links x 128 GB/s = 896 GB/s peer
    // bandwidth per GPU in an 8-GPU platform; FP8 (e4m3fnuz) matrix cores.
    id: 'mi300x-192g',
    name: 'MI300X-192G',
    memoryBytes: 192 * 1024 * MiB,
    memoryBandwidth: 5.3 * TB,
    interconnect: 'infinity-fabric',
    interconnectBandwidth: 896 * GB,
    fp8: 'native',
  },
  {
    // NVIDIA DGX B200 datasheet: 1,440 GB total over 8 GPUs (180 GB each), HBM3e 8 TB/s per GPU, NVLink 5
    // 1.8 TB/s per GPU; FP8 (and FP4) tensor cores.
    id: 'b200-180g',
    name: 'B200-180G',
    memoryBytes: 180 * GB,
    memoryBandwidth: 8 * TB,
    interconnect: 'nvlink5',
    interconnectBandwidth: 1800 * GB,
    fp8: 'native',
  },
];

/** Alternative spellings that name exactly one type. */
const ALIASES: Readonly<Record<string, string>> = {
  b200: 'b200-180g',
  mi300x: 'mi300x-192g',
  l40s: 'l40s-48g',
};

export function lookupGpu(id: string): GpuType | null {
  const key = id.trim().toLowerCase();
  const canonical = ALIASES[key] ?? key;
  return GPU_TYPES.find((g) => g.id === canonical) ?? null;
}

export const GPU_IDS: readonly string[] = GPU_TYPES.map((g) => g.id);
