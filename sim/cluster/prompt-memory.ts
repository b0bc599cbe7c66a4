/**
 * Memory for prompts' block hashes (a Float64Array of 500 for an 8k-token prompt) and the prompt cache's trie
 * nodes: typed arrays carved from 2 MiB slabs, in sizes of 4 KiB steps, and reused once released. Thousands of
 * prompts are in flight at 64 groups:
 *   - a buffer of its own per prompt cost ~40 us to make (V8 sets up and accounts each buffer's memory);
 *   - fresh pages cost more than filling them (zeroed, faulted in): a released prompt's region is handed to a
 *     later prompt of the same size class;
 *   - as JS arrays they were most of the garbage collector's work (copied by every young-generation collection
 *     they survived).
 */

/** Regions come in steps of 4 KiB, so released ones fit later prompts. */
const BYTE_STEP = 4096;
/** Above glibc's mmap threshold, so a slab comes zeroed from the kernel rather than cleared by calloc. */
const SLAB_BYTES = 2 << 20;

interface Spare {
  buffers: ArrayBuffer[];
  offsets: number[];
}

export class PromptMemory {
  private slab = new ArrayBuffer(0);
  private slabUsed = 0;
  /** Released regions by size in bytes. */
  private readonly spare = new Map<number, Spare>();

  float64s(length: number): Float64Array {
    if (length === 0) return new Float64Array(0);
    const [buffer, offset] = this.region(length * 8);
    return new Float64Array(buffer, offset, length);
  }

  /** Nothing reads `view` (made by float64s) any more: its region may be handed out again. */
  release(view: Float64Array): void {
    if (view.byteLength === 0) return;
    const size = sizeClass(view.byteLength);
    let spare = this.spare.get(size);
    if (spare === undefined) {
      spare = { buffers: [], offsets: [] };
      this.spare.set(size, spare);
    }
    spare.buffers.push(view.buffer as ArrayBuffer);
    spare.offsets.push(view.byteOffset);
  }

  /** A region of at least `bytes`: a released one of its size class, else the next in the slab. */
  private region(bytes: number): [ArrayBuffer, number] {
    const size = sizeClass(bytes);
    const spare = this.spare.get(size);
    if (spare !== undefined && spare.buffers.length > 0)
      return [spare.buffers.pop() as ArrayBuffer, spare.offsets.pop() as number];
    if (size > SLAB_BYTES / 8) return [new ArrayBuffer(size), 0];
    if (this.slabUsed + size > this.slab.byteLength) {
      this.slab = new ArrayBuffer(SLAB_BYTES);
      this.slabUsed = 0;
    }
    this.slabUsed += size;
    return [this.slab, this.slabUsed - size];
  }
}

function sizeClass(bytes: number): number {
  return Math.ceil(bytes / BYTE_STEP) * BYTE_STEP;
}
