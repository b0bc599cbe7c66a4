/**
 * Which of the node's GPUs each engine gets. Two engines on one node (say two TP4 replicas on 8 GPUs) must see
 * disjoint devices, and vLLM takes its devices from CUDA_VISIBLE_DEVICES; left unset, both would claim GPUs
 * 0-3 and the second would fail its memory check. Lowest indices first, so a node's layout is predictable.
 */

export class GpuAllocator {
  private readonly owner: (string | undefined)[];

  constructor(count: number) {
    this.owner = Array.from({ length: count }, () => undefined);
  }

  get free(): number {
    return this.owner.filter((o) => o === undefined).length;
  }

  /** Indices for `engineId` (replacing what it held), or undefined when too few are free. */
  allocate(engineId: string, count: number): number[] | undefined {
    this.release(engineId);
    const free = this.owner.flatMap((o, i) => (o === undefined ? [i] : []));
    if (free.length < count) return undefined;
    const picked = free.slice(0, count);
    for (const i of picked) this.owner[i] = engineId;
    return picked;
  }

  release(engineId: string): void {
    for (let i = 0; i < this.owner.length; i++) if (this.owner[i] === engineId) this.owner[i] = undefined;
  }
}
