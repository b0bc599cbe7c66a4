/**
 * The controller's admission, from its flags: `--tenants FILE` -> tenant admission (keys, classes, budgets in
 * Redis, on a connection of its own); no tenants -> open admission, with a warning, because then anyone who
 * reaches the port is served. Two steps: the tenant file is read and validated first (readTenants), before the
 * controller waits for Redis, so a bad file fails the start at once with its problems instead of after Redis
 * answers (which, with Redis down and no --redis-wait-ms, is never); then the budgets connect to Redis.
 */
import { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import { ValidationError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { RateLimiter } from '../tenancy/rate-limiter.ts';
import { TenantDirectory } from '../tenancy/tenant-directory.ts';
import { type Admission, openAdmission } from './admission.ts';
import { tenantAdmission } from './tenant-admission.ts';

/** A validated tenant file: what the controller serves once Redis answers. */
export interface ReadTenants {
  file: string;
  directory: TenantDirectory;
  /** Where the budgets' token buckets live (shared by every controller replica). */
  redisUrl: string;
}

/**
 * Reads and validates the tenant file (no file: undefined, the API is open). Throws ValidationError naming the
 * file and every problem, or naming `redis` when tenants come without the Redis their budgets live in.
 */
export async function readTenants(
  tenantsFile: string | undefined,
  redisUrl: string | undefined,
): Promise<ReadTenants | undefined> {
  if (tenantsFile === undefined) return undefined;
  const directory = await TenantDirectory.fromFile(tenantsFile);
  if (!redisUrl) {
    throw new ValidationError('--tenants', [
      { path: 'redis', message: 'tenant budgets are kept in Redis: set redis: URL or --redis URL' },
    ]);
  }
  return { file: tenantsFile, directory, redisUrl };
}

export interface AdmissionSource {
  /** The tenant file, read by readTenants; absent: the API is open. */
  tenants: ReadTenants | undefined;
  /** Key prefix of the buckets in Redis. */
  prefix: string;
  clock: Clock;
  log: Logger;
}

export interface LoadedAdmission {
  admission: Admission;
  /** Closes the budgets' Redis connection, if any. */
  close(): Promise<void>;
}

export async function loadAdmission(source: AdmissionSource): Promise<LoadedAdmission> {
  const { tenants, prefix, clock, log } = source;
  if (tenants === undefined) {
    log.warn(
      'no tenants configured (--tenants FILE): the API is OPEN, every caller is served as tenant "default" ' +
        'with no budgets; configure tenants before exposing this port beyond localhost',
    );
    return { admission: openAdmission(), close: async () => {} };
  }
  const redis = await connect(tenants.redisUrl, log);
  log.info('tenants loaded; every request needs an API key', {
    file: tenants.file,
    tenants: tenants.directory.size,
  });
  return {
    admission: tenantAdmission(tenants.directory, new RateLimiter({ redis, clock, prefix })),
    close: async () => {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** Connects before serving, so a wrong URL fails the start with its reason instead of every request later. */
async function connect(url: string, log: Logger): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true });
  redis.on('error', (e: Error) => log.warn('budgets: redis connection error', { error: e.message }));
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw new Error(`cannot reach redis at ${url}: ${(e as Error).message}`, { cause: e });
  }
  return redis;
}
