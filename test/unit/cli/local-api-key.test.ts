import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveApiKey } from '../../../cli/endpoint.ts';
import { ensureApiKey, newApiKey, readApiKey, singleTenant } from '../../../cli/local-api-key.ts';
import { TenantDirectory } from '../../../controller/tenancy/tenant-directory.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'corral-key-'));
  dirs.push(d);
  return d;
}
const savedEnv = process.env.CORRAL_API_KEY;
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (savedEnv === undefined) delete process.env.CORRAL_API_KEY;
  else process.env.CORRAL_API_KEY = savedEnv;
});

describe('local API key', () => {
  it('makes a 256-bit key once, owner-only, and returns the same key after', () => {
    const path = join(tempDir(), 'state', 'api-key');
    const first = ensureApiKey(path);
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^sk-corral-[A-Za-z0-9_-]{43}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(ensureApiKey(path)).toEqual({ key: first.key, created: false });
    expect(readApiKey(path)).toBe(first.key);
  });

  it('tightens a key file others could read', () => {
    const path = join(tempDir(), 'api-key');
    writeFileSync(path, 'sk-corral-existing\n');
    chmodSync(path, 0o644);
    expect(ensureApiKey(path).key).toBe('sk-corral-existing');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('refuses an empty key file rather than serving with an empty key', () => {
    const path = join(tempDir(), 'api-key');
    writeFileSync(path, '\n');
    expect(() => ensureApiKey(path)).toThrow(/is empty; delete it/);
    expect(readApiKey(path)).toBeUndefined();
    expect(readApiKey(join(tempDir(), 'none'))).toBeUndefined();
  });

  it('keys differ', () => {
    expect(newApiKey()).not.toBe(newApiKey());
  });

  it('the tenant config holds the digest only, and authenticates the key', () => {
    const key = newApiKey();
    const tenancy = singleTenant([key]);
    expect(JSON.stringify(tenancy)).not.toContain(key);
    const directory = TenantDirectory.fromOptions(tenancy);
    expect(directory.authenticate(key).id).toBe('local');
    expect(directory.resolveClass(directory.authenticate(key), 'interactive')).toBe('interactive');
  });
});

describe('resolveApiKey', () => {
  it('takes the flag, else $CORRAL_API_KEY, else the key file, else none', () => {
    const file = join(tempDir(), 'api-key');
    delete process.env.CORRAL_API_KEY;
    expect(resolveApiKey(undefined, file)).toBeUndefined();
    writeFileSync(file, 'sk-from-file\n');
    expect(resolveApiKey(undefined, file)).toBe('sk-from-file');
    process.env.CORRAL_API_KEY = 'sk-from-env';
    expect(resolveApiKey(undefined, file)).toBe('sk-from-env');
    expect(resolveApiKey('sk-from-flag', file)).toBe('sk-from-flag');
  });
});
