/**
 * The local cluster's API key: secure by default. `corral up` makes a random key on first start and keeps it
 * in the local state dir (mode 0600, so other users of the machine cannot read it); the controller is given
 * only its SHA-256 digest, in the tenant file. `corral generate` and `corral status` read the key back, so
 * the person who started the cluster never has to copy it; anyone else needs it to be served.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TenancyOptions } from '../controller/tenancy/tenant-config.ts';
import { sha256Hex } from '../controller/tenancy/tenant-directory.ts';

/** The tenant every local key belongs to. */
export const LOCAL_TENANT = 'local';

/** `sk-corral-` and 32 random bytes (256 bits) in base64url: unguessable, and recognisable in a leak scan. */
export function newApiKey(random: (n: number) => Buffer = randomBytes): string {
  return `sk-corral-${random(32).toString('base64url')}`;
}

/**
 * The key stored at `path`, made (and stored owner-only) when there is none. A key file that others could
 * read is tightened to 0600 rather than trusted as it is.
 */
export function ensureApiKey(path: string): { key: string; created: boolean } {
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (key === '') throw new Error(`the API key file ${path} is empty; delete it to get a new key`);
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { key, created: false };
  }
  mkdirSync(dirname(path), { recursive: true });
  const key = newApiKey();
  // 'wx': never overwrite a key another `corral up` wrote meanwhile.
  writeFileSync(path, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return { key, created: true };
}

/** The key stored at `path`, or undefined when there is none (no local cluster was ever started). */
export function readApiKey(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const key = readFileSync(path, 'utf8').trim();
  return key === '' ? undefined : key;
}

/** One tenant owning `keys`, allowed every class, without budgets: the local cluster's single user. */
export function singleTenant(keys: readonly string[], id = LOCAL_TENANT): TenancyOptions {
  return {
    tenants: [
      {
        id,
        classes: ['interactive', 'standard', 'batch'],
        defaultClass: 'standard',
        keySha256: keys.map(sha256Hex),
      },
    ],
  };
}
