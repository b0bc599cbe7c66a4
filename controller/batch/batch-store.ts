/**
 * Batches and their files in Redis: the whole state of a batch lives here, so a driver that dies is continued
 * by another controller from where it stopped. Keys (a batch's keys share one hash tag, Redis Cluster ready):
 *
 *   F = <prefix>:file:{<file id>}
 *   F          hash  id, tenant, filename, purpose, bytes, lines, created (ms)
 *   F:lines    list  the file's lines as uploaded (blank ones too, so list index = line number - 1)
 *   B = <prefix>:batch:{<batch id>}
 *   B          hash  id, tenant, weight, url, input, status, <status>_at (ms), expires, total, completed,
 *                    failed, cursor (lines before it were fed or have a result), errors, metadata
 *   B:results  hash  line number -> the line's output JSON (batch-output.ts); written once
 *   B:fed      set   line numbers in the request queue without a result yet
 *   <prefix>:batches:{<tenant>}  zset  the tenant's batch ids by creation time (GET /v1/batches)
 *
 * Every key expires retainMs after its last write; a result is counted in the same script that writes it,
 * once, so two drivers (a stalled one and its successor) cannot count a line twice.
 */
import type { Redis } from 'ioredis';
import type { BatchUrl } from './batch-line.ts';
import { type BatchCounts, type BatchStatus, canMove, isBatchStatus, TRANSITIONS } from './batch-state.ts';

export interface FileRecord {
  id: string;
  tenant: string;
  filename: string;
  purpose: string;
  bytes: number;
  /** Lines in the list (blank ones included). */
  lines: number;
  createdAt: number;
}

export interface BatchRecord {
  id: string;
  tenant: string;
  /** The tenant's weight when the batch was created (the queue's fair share). */
  weight: number;
  url: BatchUrl;
  inputFileId: string;
  status: BatchStatus;
  /** When the batch entered each status it went through (ms). */
  at: Partial<Record<BatchStatus, number>>;
  createdAt: number;
  expiresAt: number;
  cursor: number;
  counts: BatchCounts;
  /** Why a failed batch failed. */
  errors: string | undefined;
  metadata: Record<string, string> | null;
}

export type NewBatch = Omit<BatchRecord, 'status' | 'at' | 'cursor' | 'counts' | 'errors'>;

const RECORD = `
local isNew = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if isNew == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('SREM', KEYS[3], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return isNew
`;

const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
for i = 3, #ARGV do
  if ARGV[i] == cur then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[1] .. '_at', ARGV[2])
    return 'ok'
  end
end
return cur
`;

interface Scripts {
  corralBatchRecord(...a: (string | number)[]): Promise<number>;
  corralBatchTransition(...a: (string | number)[]): Promise<string>;
}

export class BatchStore {
  private readonly scripts: Scripts;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly retainMs: number,
  ) {
    redis.defineCommand('corralBatchRecord', { numberOfKeys: 3, lua: RECORD });
    redis.defineCommand('corralBatchTransition', { numberOfKeys: 1, lua: TRANSITION });
    this.scripts = redis as unknown as Scripts;
  }

  private fileKey(id: string): string {
    return `${this.prefix}:file:{${id}}`;
  }

  private batchKey(id: string): string {
    return `${this.prefix}:batch:{${id}}`;
  }

  async putFile(f: FileRecord, lines: readonly string[]): Promise<void> {
    const key = this.fileKey(f.id);
    const p = this.redis.multi();
    p.del(key, `${key}:lines`);
    for (let i = 0; i < lines.length; i += 1000) p.rpush(`${key}:lines`, ...lines.slice(i, i + 1000));
    p.hset(key, {
      id: f.id,
      tenant: f.tenant,
      filename: f.filename,
      purpose: f.purpose,
      bytes: f.bytes,
      lines: f.lines,
      created: f.createdAt,
    });
    p.pexpire(key, this.retainMs);
    if (lines.length > 0) p.pexpire(`${key}:lines`, this.retainMs);
    await p.exec();
  }

  async getFile(id: string): Promise<FileRecord | undefined> {
    const h = await this.redis.hgetall(this.fileKey(id));
    if (!h.id) return undefined;
    return {
      id,
      tenant: h.tenant ?? '',
      filename: h.filename ?? '',
      purpose: h.purpose ?? '',
      bytes: Number(h.bytes ?? 0),
      lines: Number(h.lines ?? 0),
      createdAt: Number(h.created ?? 0),
    };
  }

  /** Lines [from, from + count) of a file, 0-based (line number - 1). */
  fileLines(id: string, from: number, count: number): Promise<string[]> {
    return this.redis.lrange(`${this.fileKey(id)}:lines`, from, from + count - 1);
  }

  async createBatch(b: NewBatch, now: number): Promise<void> {
    const key = this.batchKey(b.id);
    const index = this.indexKey(b.tenant);
    await this.redis.multi().zadd(index, b.createdAt, b.id).pexpire(index, this.retainMs).exec();
    await this.redis
      .multi()
      .hset(key, {
        id: b.id,
        tenant: b.tenant,
        weight: b.weight,
        url: b.url,
        input: b.inputFileId,
        status: 'validating',
        validating_at: now,
        created: b.createdAt,
        expires: b.expiresAt,
        total: 0,
        completed: 0,
        failed: 0,
        cursor: 0,
        metadata: JSON.stringify(b.metadata),
      })
      .pexpire(key, this.retainMs)
      .exec();
  }

  /** The tenant's batch ids, newest first (some may have expired since: getBatch answers undefined). */
  tenantBatches(tenant: string): Promise<string[]> {
    return this.redis.zrevrange(this.indexKey(tenant), 0, -1);
  }

  /** Drops ids of batches that expired from the tenant's index. */
  async forget(tenant: string, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.zrem(this.indexKey(tenant), ...ids);
  }

  private indexKey(tenant: string): string {
    return `${this.prefix}:batches:{${tenant}}`;
  }

  async getBatch(id: string): Promise<BatchRecord | undefined> {
    const key = this.batchKey(id);
    const [[, h], [, fed]] = (await this.redis.multi().hgetall(key).scard(`${key}:fed`).exec()) as [
      [Error | null, Record<string, string>],
      [Error | null, number],
    ];
    if (!h.id || !isBatchStatus(h.status)) return undefined;
    const at: Partial<Record<BatchStatus, number>> = {};
    for (const s of Object.keys(TRANSITIONS) as BatchStatus[]) {
      const v = h[`${s}_at`];
      if (v !== undefined) at[s] = Number(v);
    }
    return {
      id,
      tenant: h.tenant ?? '',
      weight: Number(h.weight ?? 1),
      url: h.url as BatchUrl,
      inputFileId: h.input ?? '',
      status: h.status,
      at,
      createdAt: Number(h.created ?? 0),
      expiresAt: Number(h.expires ?? 0),
      cursor: Number(h.cursor ?? 0),
      counts: {
        total: Number(h.total ?? 0),
        completed: Number(h.completed ?? 0),
        failed: Number(h.failed ?? 0),
        outstanding: fed,
      },
      errors: h.errors,
      metadata: h.metadata ? (JSON.parse(h.metadata) as Record<string, string> | null) : null,
    };
  }

  /**
   * Moves the batch to `to` if its status allows it (batch-state.ts); the status it had instead otherwise.
   * At a terminal status every key of the batch is kept retainMs from now.
   */
  async transition(id: string, to: BatchStatus, now: number, errors?: string): Promise<'ok' | string> {
    const from = (Object.keys(TRANSITIONS) as BatchStatus[]).filter((s) => canMove(s, to));
    const key = this.batchKey(id);
    const r = await this.scripts.corralBatchTransition(key, to, now, ...from);
    if (r !== 'ok') return r;
    if (errors !== undefined) await this.redis.hset(key, 'errors', errors);
    if (TRANSITIONS[to].length === 0) {
      await this.redis
        .multi()
        .pexpire(key, this.retainMs)
        .pexpire(`${key}:results`, this.retainMs)
        .del(`${key}:fed`)
        .exec();
    }
    return r;
  }

  async setTotal(id: string, total: number): Promise<void> {
    await this.redis.hset(this.batchKey(id), 'total', total);
  }

  /** The lines before `cursor` (0-based) are fed or have their result. */
  async advance(id: string, cursor: number): Promise<void> {
    await this.redis.hset(this.batchKey(id), 'cursor', cursor);
  }

  /** The line's request is in the queue (until its result is recorded). */
  async markFed(id: string, line: number): Promise<void> {
    const key = `${this.batchKey(id)}:fed`;
    await this.redis.multi().sadd(key, line).pexpire(key, this.retainMs).exec();
  }

  /** Writes a line's result once and counts it; false when it had one already. */
  async record(id: string, line: number, output: string, ok: boolean): Promise<boolean> {
    const key = this.batchKey(id);
    const fresh = await this.scripts.corralBatchRecord(
      `${key}:results`,
      key,
      `${key}:fed`,
      line,
      output,
      ok ? 'completed' : 'failed',
      this.retainMs,
    );
    return fresh === 1;
  }

  async fed(id: string): Promise<number[]> {
    return (await this.redis.smembers(`${this.batchKey(id)}:fed`)).map(Number);
  }

  /** The results of lines [from, from + count), 1-based; undefined where a line has none. */
  async results(id: string, from: number, count: number): Promise<(string | undefined)[]> {
    if (count <= 0) return [];
    const lines = Array.from({ length: count }, (_, i) => String(from + i));
    const r = await this.redis.hmget(`${this.batchKey(id)}:results`, ...lines);
    return r.map((v) => v ?? undefined);
  }
}
