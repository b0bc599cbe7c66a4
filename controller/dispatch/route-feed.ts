/**
 * Routing decisions shared between controller replicas, so that two active controllers keep prefix affinity:
 * each replica's prefix index (PrefixRouter) is built from its own decisions, and without the others' a
 * replica would send a prefix another replica already placed on g3 to whichever group it happens to believe.
 *
 * Every decision is appended to one Redis stream per deployment, B:routes (keys.ts queueBase), entries
 * { o: owner, d: "<group> <blockCount> <hitBlocks> <kept hashes as float64s, base64>" }; every replica
 * reads the stream (XREAD BLOCK on a connection of its own) and records the others' decisions in its index.
 * Why a stream and not pub/sub or the index itself in Redis:
 *   - no round trip before the dispatch call: the XADD is sent after pick and never awaited (ioredis pipelines
 *     it on the shared connection); pick reads only the local index, as with one replica;
 *   - a replica that starts (or reconnects) replays the decisions still in the stream and rebuilds its index
 *     from them, where pub/sub would lose them;
 *   - the index stays approximate and self-correcting (hit-rate reports), so a decision read a few ms late, or
 *     lost with a Redis restart, costs at most one request's affinity.
 * Memory: the stream is capped by XADD MAXLEN ~ maxEntries (default 2,048 decisions; at most 2,048 kept hashes,
 * 11 bytes each in base64, per decision: ~23 KB for a 128k-token prompt, ~1.5 KB for an 8k-token one, so
 * 3 MB for 8k-token prompts, 47 MB at worst); each replica's index keeps at most its believed KV capacity per
 * group (PrefixIndex, LRU).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../common/log.ts';
import type { RouteDecision } from '../scheduler/prefix-router.ts';

export interface RouteFeedOptions {
  redis: Redis;
  /** The stream's key. */
  key: string;
  /** This replica (its own entries are skipped when read back). */
  owner: string;
  /** Decisions of other replicas, in stream order. */
  onDecision: (d: RouteDecision) => void;
  log: Logger;
  maxEntries?: number;
  /** Kept hashes per decision beyond this are not shared (the head of a prompt is what others reuse). */
  maxKept?: number;
}

const BLOCK_MS = 1000;

/** Hashes as float64 bytes in base64: native both ways (number -> string in base 36 cost 2 us per hash). */
export function encodeDecision(d: RouteDecision, maxKept = Number.POSITIVE_INFINITY): string {
  const kept = Float64Array.from(d.kept.length > maxKept ? d.kept.slice(0, maxKept) : d.kept);
  return `${d.group} ${d.blockCount} ${d.hitBlocks} ${Buffer.from(kept.buffer).toString('base64')}`;
}

/** The decision in an entry, or undefined when the entry is not one (written by a newer or broken replica). */
export function decodeDecision(s: string): RouteDecision | undefined {
  const [group, count, hit, hashes = '', ...extra] = s.split(' ');
  const blockCount = Number(count);
  const hitBlocks = Number(hit);
  if (!group || extra.length > 0 || !Number.isInteger(blockCount) || !Number.isInteger(hitBlocks))
    return undefined;
  const bytes = Buffer.from(hashes, 'base64');
  if (bytes.length % 8 !== 0) return undefined;
  const kept = Array.from(
    new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
  );
  if (kept.some((h) => !Number.isSafeInteger(h) || h < 0)) return undefined;
  return { group, blockCount, hitBlocks, kept };
}

export class RouteFeed {
  private readonly reader: Redis;
  private closed = false;
  private readonly loopDone: Promise<void>;

  private constructor(private readonly o: RouteFeedOptions) {
    this.reader = o.redis.duplicate();
    // The loop retries after a failed read; ioredis reconnects by itself.
    this.reader.on('error', () => {});
    this.loopDone = this.readLoop();
  }

  /** Starts reading from the oldest decision still in the stream (the index is rebuilt from them). */
  static open(o: RouteFeedOptions): RouteFeed {
    return new RouteFeed(o);
  }

  /** Shares one of this replica's decisions; never awaited by the dispatch path. */
  publish(d: RouteDecision): void {
    if (this.closed) return;
    const max = this.o.maxEntries ?? 2048;
    this.o.redis
      .xadd(
        this.o.key,
        'MAXLEN',
        '~',
        max,
        '*',
        'o',
        this.o.owner,
        'd',
        encodeDecision(d, this.o.maxKept ?? 2048),
      )
      .catch((e: Error) => this.o.log.debug('sharing a routing decision failed', { error: e.message }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reader.disconnect();
    await this.loopDone;
  }

  private async readLoop(): Promise<void> {
    let cursor = '0';
    let failures = 0;
    while (!this.closed) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = (await this.reader.xread(
          'COUNT',
          512,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.o.key,
          cursor,
        )) as typeof res;
        failures = 0;
      } catch (e) {
        if (this.closed) return;
        failures += 1;
        if (failures === 1)
          this.o.log.warn('reading shared routing decisions failed', { error: (e as Error).message });
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(failures, 5))));
        continue;
      }
      for (const [id, fields] of res?.[0]?.[1] ?? []) {
        cursor = id;
        const owner = fieldOf(fields, 'o');
        const d = owner === this.o.owner ? undefined : decodeDecision(fieldOf(fields, 'd') ?? '');
        if (d) this.o.onDecision(d);
      }
    }
  }
}

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
