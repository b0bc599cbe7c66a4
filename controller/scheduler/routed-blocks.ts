/**
 * One group's kept block hashes, least recently routed first: the prefix index's per-group LRU (prefix-index.ts).
 * Routing a prompt makes all of its kept hashes the newest, its head newest of all (vLLM frees a finished
 * request's blocks tail first, so shared heads are evicted last); eviction drops the oldest.
 *
 * Kept as runs rather than a clock per hash. A run is a stretch kept[from..to) of one routed prompt's kept
 * hashes, newest at `from`; the runs sit in a list from oldest to newest. Most of a routed prompt is usually a
 * prefix the group already holds (a tenant's system prompt, a conversation's history): those hashes lie at the
 * heads of a few runs, found by one lookup each and a comparison along the prompt, and routing moves them into
 * one new run at the end of the list, without a write per hash. Only the prompt's new hashes, and what is left
 * of a run whose head moved, are written. Before, every kept hash of every routed prompt took a hash-table
 * write (a cache miss each, 128 per 8k-token prompt), and each eviction scanned the whole table.
 *
 * The order is exactly the per-hash clock order it replaces (a test holds it to an LRU by sorting): when a
 * prompt is not a chain this group's runs can take in that way (a hash repeated in it, or held past its first
 * unheld hash: never for chained block hashes), it is routed hash by hash, each becoming a run of one.
 */
import { NumberTable } from '../../common/number-table.ts';

interface Run {
  /** Its id in `runOf`. */
  readonly id: number;
  /**
   * Hashes of kept blocks [base, base + hashes.length) of the prompt that made it; members are [from, to). The
   * run's own array: no other run's, nor the caller's.
   */
  readonly hashes: number[];
  readonly base: number;
  from: number;
  to: number;
  /** Neighbours in the list: older, newer. */
  older: Run | undefined;
  newer: Run | undefined;
}

/** The runs a prompt's held head lies in, in order: pieces[i] holds its kept blocks [pieces[i].from, pieceTo[i]). */
const pieces: Run[] = [];
const pieceTo: number[] = [];

export class RoutedBlocks {
  /** Kept hash -> the id of the run it is a member of. */
  private readonly runOf = new NumberTable();
  private readonly runs: (Run | undefined)[] = [];
  private readonly freeIds: number[] = [];
  private oldest: Run | undefined;
  private newest: Run | undefined;
  private count = 0;

  /** Kept hashes held. */
  get size(): number {
    return this.count;
  }

  /**
   * The prompt with these block hashes was routed here: its kept ones (every `stride`-th) are now the newest,
   * the first newest of all. `added(h)` is called for each hash not held before. Reads `blocks` only now.
   */
  route(blocks: ArrayLike<number>, stride: number, added: (hash: number) => void): void {
    const kept = new Kept(blocks, stride);
    // Refused before anything changes: a NaN cannot be a table key, and a route half done would leave hashes
    // pointing at a run never made.
    for (let i = 0; i < kept.length; i++)
      if (Number.isNaN(kept.at(i))) throw new RangeError(`kept block hash ${i} is NaN`);
    if (kept.length > 0 && !this.routeAsRun(kept, added)) this.routeEach(kept, added);
  }

  /** Drops the oldest hashes until `capacity` remain, calling `dropped(h)` for each. */
  evictTo(capacity: number, dropped: (hash: number) => void): void {
    while (this.count > capacity) {
      const run = this.oldest as Run;
      const drop = Math.min(this.count - capacity, run.to - run.from);
      for (let i = run.to - drop; i < run.to; i++) {
        const h = run.hashes[i - run.base] as number;
        this.runOf.delete(h);
        dropped(h);
      }
      run.to -= drop;
      this.count -= drop;
      if (run.from === run.to) this.discard(run);
    }
  }

  forEach(visit: (hash: number) => void): void {
    for (let run = this.oldest; run !== undefined; run = run.newer)
      for (let i = run.from; i < run.to; i++) visit(run.hashes[i - run.base] as number);
  }

  /**
   * The fast way: the held head kept[0..m) lies at the heads of runs, kept[m..) is new to this group and has no
   * repeats. Those heads move into one run of the whole prompt. False, with nothing changed, if the prompt is
   * not like that.
   */
  private routeAsRun(kept: Kept, added: (hash: number) => void): boolean {
    const k = kept.length;
    pieces.length = 0;
    pieceTo.length = 0;
    let m = 0;
    while (m < k) {
      const id = this.runOf.get(kept.at(m));
      if (id === undefined) break;
      const run = this.runs[id] as Run;
      if (run.from !== m || run.hashes[m - run.base] !== kept.at(m)) return false;
      let end = m + 1;
      while (end < run.to && end < k && run.hashes[end - run.base] === kept.at(end)) end++;
      pieces.push(run);
      pieceTo.push(end);
      m = end;
    }
    // The new run takes the id of the run whose head it takes most of, net of what that run keeps.
    let reused: Run | undefined;
    let saved = 0;
    for (let p = 0; p < pieces.length; p++) {
      const run = pieces[p] as Run;
      const end = pieceTo[p] as number;
      const gain = end - run.from - (run.to - end);
      if (gain > saved) {
        reused = run;
        saved = gain;
      }
    }
    const id = reused === undefined ? (this.freeIds.pop() ?? this.runs.length) : reused.id;
    for (let i = k - 1; i >= m; i--) {
      if (this.runOf.addIfAbsent(kept.at(i), id)) continue;
      for (let j = k - 1; j > i; j--) this.runOf.delete(kept.at(j));
      if (reused === undefined && id < this.runs.length) this.freeIds.push(id);
      return false;
    }
    for (let p = 0; p < pieces.length; p++) {
      const run = pieces[p] as Run;
      const end = pieceTo[p] as number;
      if (run === reused) {
        // What it keeps stays where it was in the list, as a run of its own.
        if (end < run.to) this.replace(run, this.copyOf(run, end, run.to));
        else this.unlink(run);
      } else {
        for (let i = run.from; i < end; i++) this.runOf.set(run.hashes[i - run.base] as number, id);
        run.from = end;
        if (run.from === run.to) this.discard(run);
      }
    }
    // The run whose id it takes gives its array too when that holds the prompt's first hashes: only the hashes
    // past them are written (its own old ones past them were copied out above).
    let hashes: number[];
    let written = 0;
    if (reused !== undefined && reused === pieces[0] && reused.base === 0) {
      hashes = reused.hashes;
      written = pieceTo[0] as number;
    } else hashes = new Array<number>(k);
    for (let i = written; i < k; i++) hashes[i] = kept.at(i);
    hashes.length = k;
    const run: Run = { id, hashes, base: 0, from: 0, to: k, older: undefined, newer: undefined };
    this.runs[id] = run;
    this.append(run);
    for (let i = k - 1; i >= m; i--) added(kept.at(i));
    this.count += k - m;
    return true;
  }

  /** The general way: hash by hash from the tail, each made a run of one at the newest end. */
  private routeEach(kept: Kept, added: (hash: number) => void): void {
    for (let i = kept.length - 1; i >= 0; i--) {
      const h = kept.at(i);
      const id = this.runOf.get(h);
      if (id === undefined) {
        added(h);
        this.count++;
      } else this.detach(this.runs[id] as Run, h);
      const single = this.newRun([h], i, i, i + 1);
      this.runOf.set(h, single.id);
      this.append(single);
    }
  }

  /** Takes `h` out of `run`; what follows it in the run (older) becomes a run of its own, just before it. */
  private detach(run: Run, h: number): void {
    let at = run.from;
    while (run.hashes[at - run.base] !== h) at++;
    if (at + 1 < run.to) {
      const rest = this.copyOf(run, at + 1, run.to);
      this.link(rest, run.older, run);
    }
    run.to = at;
    if (run.from === run.to) this.discard(run);
  }

  /** A new run of `run`'s members [from, to), its members moved to it in `runOf`; not in the list yet. */
  private copyOf(run: Run, from: number, to: number): Run {
    const hashes = new Array<number>(to - from);
    for (let i = from; i < to; i++) hashes[i - from] = run.hashes[i - run.base] as number;
    const copy = this.newRun(hashes, from, from, to);
    for (let i = 0; i < hashes.length; i++) this.runOf.set(hashes[i] as number, copy.id);
    return copy;
  }

  private newRun(hashes: number[], base: number, from: number, to: number): Run {
    const id = this.freeIds.pop() ?? this.runs.length;
    const run: Run = { id, hashes, base, from, to, older: undefined, newer: undefined };
    this.runs[id] = run;
    return run;
  }

  /** Drops an empty run: out of the list, its id free. */
  private discard(run: Run): void {
    this.unlink(run);
    this.runs[run.id] = undefined;
    this.freeIds.push(run.id);
  }

  /** `next` takes `run`'s place in the list; `run` is out of it (its id stays in use). */
  private replace(run: Run, next: Run): void {
    this.link(next, run.older, run.newer);
    run.older = undefined;
    run.newer = undefined;
  }

  private append(run: Run): void {
    this.link(run, this.newest, undefined);
  }

  /** Puts `run` between `older` and `newer` (neighbours in the list, or its ends). */
  private link(run: Run, older: Run | undefined, newer: Run | undefined): void {
    run.older = older;
    run.newer = newer;
    if (older) older.newer = run;
    else this.oldest = run;
    if (newer) newer.older = run;
    else this.newest = run;
  }

  private unlink(run: Run): void {
    if (run.older) run.older.newer = run.newer;
    else this.oldest = run.newer;
    if (run.newer) run.newer.older = run.older;
    else this.newest = run.older;
    run.older = undefined;
    run.newer = undefined;
  }
}

/** The kept hashes of a prompt's block hashes: every `stride`-th, read where they are. */
class Kept {
  readonly length: number;

  constructor(
    private readonly blocks: ArrayLike<number>,
    private readonly stride: number,
  ) {
    this.length = Math.floor(blocks.length / stride);
  }

  at(i: number): number {
    return this.blocks[(i + 1) * this.stride - 1] as number;
  }
}
