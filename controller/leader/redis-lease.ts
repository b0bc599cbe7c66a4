/**
 * The leader lease in Redis, for clusters without Kubernetes (the local cluster). Two keys:
 *   <prefix>:lease   "<epoch>:<replica id>", with a PX expiry: present while someone leads
 *   <prefix>:epoch   a counter, INCRed by every acquisition: the fencing token (kept by the AOF across restarts)
 * Acquire is SET NX PX run inside a script together with the INCR, so the epoch advances only for the winner and
 * a later leader always holds a higher epoch than an earlier one. The caller also passes the highest epoch it has
 * seen: if Redis lost the counter (a restart that lost its last second of AOF, or no AOF), the new epoch still
 * exceeds every one the workers may have seen, else they would ignore the new leader. Renew and release compare the stored value
 * with ours first (a plain PEXPIRE or DEL could extend or end another replica's lease).
 */
import type { Redis } from 'ioredis';
import type { LeaseHolder, LeaseReply } from './lease-decision.ts';

/** What the elector needs of a lease store; tests may swap the store, the decisions stay the same. */
export interface LeaseStore {
  /** Takes the lease if free, under an epoch above the store's counter and above `seenEpoch`. */
  acquire(id: string, leaseMs: number, seenEpoch: number): Promise<LeaseReply>;
  renew(id: string, epoch: number, leaseMs: number): Promise<LeaseReply>;
  /** Ends our lease at once (graceful shutdown), so a follower takes over without waiting for the expiry. */
  release(id: string, epoch: number): Promise<void>;
  /** Who holds the lease now, if anyone. */
  holder(): Promise<LeaseHolder | undefined>;
}

const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
local epoch = redis.call('INCR', KEYS[2])
if epoch <= tonumber(ARGV[3]) then
  epoch = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[2], epoch)
end
local value = epoch .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2])
return {1, value}
`;

const RENEW = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, holder}
end
if not holder then return {0} end
return {0, holder}
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type LeaseCommands = {
  corralLeaseAcquire(
    lease: string,
    epoch: string,
    id: string,
    leaseMs: number,
    seenEpoch: number,
  ): Promise<[number, string?]>;
  corralLeaseRenew(lease: string, value: string, leaseMs: number): Promise<[number, string?]>;
  corralLeaseRelease(lease: string, value: string): Promise<number>;
};

export class RedisLeaseStore implements LeaseStore {
  private readonly leaseKey: string;
  private readonly epochKey: string;

  /** `prefix` names the lease, e.g. `corral:leader:groups`; replicas that compete share it. */
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.leaseKey = `${prefix}:lease`;
    this.epochKey = `${prefix}:epoch`;
    redis.defineCommand('corralLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand('corralLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('corralLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
  }

  async acquire(id: string, leaseMs: number, seenEpoch: number): Promise<LeaseReply> {
    return this.call(async () => {
      const [won, value] = await this.commands.corralLeaseAcquire(
        this.leaseKey,
        this.epochKey,
        id,
        leaseMs,
        seenEpoch,
      );
      const holder = parseHolder(value);
      if (won === 1 && holder) return { t: 'acquired', epoch: holder.epoch };
      return { t: 'held', holder };
    });
  }

  async renew(id: string, epoch: number, leaseMs: number): Promise<LeaseReply> {
    return this.call(async () => {
      const [ok, value] = await this.commands.corralLeaseRenew(this.leaseKey, leaseValue(id, epoch), leaseMs);
      return ok === 1 ? { t: 'renewed' } : { t: 'held', holder: parseHolder(value) };
    });
  }

  async release(id: string, epoch: number): Promise<void> {
    await this.commands.corralLeaseRelease(this.leaseKey, leaseValue(id, epoch));
  }

  async holder(): Promise<LeaseHolder | undefined> {
    return parseHolder((await this.redis.get(this.leaseKey)) ?? undefined);
  }

  private get commands(): LeaseCommands {
    return this.redis as unknown as LeaseCommands;
  }

  /** A store that does not answer is an answer too: the decision logic lets a leader's term run out. */
  private async call(f: () => Promise<LeaseReply>): Promise<LeaseReply> {
    try {
      return await f();
    } catch (e) {
      return { t: 'error', message: e instanceof Error ? e.message : String(e) };
    }
  }
}

function leaseValue(id: string, epoch: number): string {
  return `${epoch}:${id}`;
}

/** "<epoch>:<id>" (the id may itself contain colons). */
export function parseHolder(value: string | undefined): LeaseHolder | undefined {
  if (!value) return undefined;
  const colon = value.indexOf(':');
  const epoch = Number(value.slice(0, colon));
  if (colon <= 0 || !Number.isSafeInteger(epoch)) return undefined;
  return { id: value.slice(colon + 1), epoch };
}
