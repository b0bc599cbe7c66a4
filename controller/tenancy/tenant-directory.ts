/**
 * API key -> tenant. The directory holds only SHA-256 digests of keys: the presented key is hashed and looked
 * up. A plain hash (no salt, no slow KDF) is right here because API keys are long random strings, not
 * passwords: nobody can brute-force a 256-bit key from its digest, and a fast hash keeps auth off the
 * latency budget. Lookup is by digest in a Map, so timing reveals nothing about the key itself.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { CorralError, ValidationError } from '../../common/errors.ts';
import type { PriorityClass } from '../queue/priority-class.ts';
import { UnauthenticatedError } from './errors.ts';
import { type CompiledTenancy, compileTenancy, type TenancyOptions, type Tenant } from './tenant-config.ts';

export function sha256Hex(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/** The tenant may not use the priority class it asked for (maps to PERMISSION_DENIED). */
export class ClassNotAllowedError extends CorralError {
  override name = 'ClassNotAllowedError';
  constructor(
    readonly tenant: string,
    readonly requested: PriorityClass,
  ) {
    super('permission_denied', `tenant ${tenant} may not submit ${requested} requests`, {
      tenant,
      requested,
    });
  }
}

export class TenantDirectory {
  private constructor(private readonly compiled: CompiledTenancy) {}

  static fromOptions(options: TenancyOptions): TenantDirectory {
    const r = compileTenancy(options);
    if (!r.ok) throw new ValidationError('tenancy', r.error);
    return new TenantDirectory(r.value);
  }

  /**
   * A YAML or JSON file holding TenancyOptions (`tenants: [...]`), e.g. mounted from a Kubernetes Secret.
   * Every problem is reported with its path, prefixed by the file; an unreadable file is one of them.
   */
  static async fromFile(path: string): Promise<TenantDirectory> {
    const what = `tenant file ${path}`;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new ValidationError(what, [{ path: '(file)', message: `cannot read: ${(e as Error).message}` }]);
    }
    let parsed: unknown;
    try {
      parsed = parse(text);
    } catch (e) {
      const first = (e as Error).message.split('\n')[0];
      throw new ValidationError(what, [{ path: '(file)', message: `not valid YAML/JSON: ${first}` }]);
    }
    const r = compileTenancy(parsed as TenancyOptions);
    if (!r.ok) throw new ValidationError(what, r.error);
    return new TenantDirectory(r.value);
  }

  /** How many tenants there are (for the startup log). */
  get size(): number {
    return this.compiled.tenants.size;
  }

  /** The tenant owning `apiKey`, or UnauthenticatedError for a missing, unknown, revoked or disabled key. */
  authenticate(apiKey: string | undefined): Tenant {
    if (!apiKey) throw new UnauthenticatedError('missing');
    const digest = sha256Hex(apiKey);
    if (this.compiled.revoked.has(digest)) throw new UnauthenticatedError('revoked');
    const id = this.compiled.keys.get(digest);
    const tenant = id === undefined ? undefined : this.compiled.tenants.get(id);
    if (!tenant) throw new UnauthenticatedError('unknown');
    if (tenant.disabled) throw new UnauthenticatedError('revoked');
    return tenant;
  }

  /** The class a request runs in: the one asked for if the tenant may use it, else its default. */
  resolveClass(tenant: Tenant, requested: PriorityClass | undefined): PriorityClass {
    if (requested === undefined) return tenant.defaultClass;
    if (!tenant.classes.has(requested)) throw new ClassNotAllowedError(tenant.id, requested);
    return requested;
  }

  tenant(id: string): Tenant | undefined {
    return this.compiled.tenants.get(id);
  }

  /** Weights by tenant id, for the queue's fair sharing. */
  weights(): Map<string, number> {
    return new Map([...this.compiled.tenants.values()].map((t) => [t.id, t.weight]));
  }
}
