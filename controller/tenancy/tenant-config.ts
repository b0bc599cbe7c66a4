/**
 * Tenants: options (as written in the tenant file or the Helm values) compiled once into resolved tenants.
 * API keys never appear here, only their SHA-256 hex digests, so a leaked config or values file leaks no key.
 * Validation collects every problem with its path (`tenants[1].weight: must be > 0`).
 */
import { err, type FieldError, ok, type Result } from '../../common/errors.ts';
import { isPriorityClass, type PriorityClass } from '../queue/priority-class.ts';

export interface BudgetOptions {
  /** Sustained rate, per second. */
  perSecond: number;
  /** Bucket size: how much may be spent at once after an idle period. Default: one second's worth (min 1). */
  burst?: number;
}

export interface TenantOptions {
  id: string;
  /** Share of its priority class relative to other tenants' weights. Default 1. */
  weight?: number;
  /** Classes this tenant may ask for. Default ['standard', 'batch']: interactive is granted, not assumed. */
  classes?: string[];
  /** Class used when the request names none. Default: the highest allowed class. */
  defaultClass?: string;
  /** Request-rate budget. Absent: unlimited. */
  requests?: BudgetOptions;
  /** Token budget (prompt tokens + max_tokens per request). Absent: unlimited. */
  tokens?: BudgetOptions;
  /** SHA-256 hex digests of the tenant's API keys. */
  keySha256: string[];
  /** Digests of keys that were revoked: they authenticate nobody, and say so in the log. */
  revokedKeySha256?: string[];
  /** A disabled tenant's keys all fail authentication. */
  disabled?: boolean;
}

export interface TenancyOptions {
  tenants: TenantOptions[];
}

export interface Budget {
  perSecond: number;
  burst: number;
}

export interface Tenant {
  id: string;
  weight: number;
  classes: ReadonlySet<PriorityClass>;
  defaultClass: PriorityClass;
  requests: Budget | undefined;
  tokens: Budget | undefined;
  disabled: boolean;
}

export interface CompiledTenancy {
  tenants: ReadonlyMap<string, Tenant>;
  /** key digest -> tenant id */
  keys: ReadonlyMap<string, string>;
  /** digests of revoked keys */
  revoked: ReadonlySet<string>;
}

const TENANT_FIELDS = new Set([
  'id',
  'weight',
  'classes',
  'defaultClass',
  'requests',
  'tokens',
  'keySha256',
  'revokedKeySha256',
  'disabled',
]);
const SHA256_HEX = /^[0-9a-f]{64}$/;
const TENANT_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function compileTenancy(options: TenancyOptions): Result<CompiledTenancy> {
  const errors: FieldError[] = [];
  const tenants = new Map<string, Tenant>();
  const keys = new Map<string, string>();
  const revoked = new Set<string>();
  const seenIds = new Set<string>();
  if (!Array.isArray(options?.tenants)) return err([{ path: 'tenants', message: 'must be a list' }]);
  options.tenants.forEach((t, i) => {
    const at = (field: string) => `tenants[${i}].${field}`;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      errors.push({ path: `tenants[${i}]`, message: 'must be a mapping' });
      return;
    }
    const before = errors.length;
    // A misspelt field (`keysha256`) would otherwise silently leave the tenant without keys or budgets.
    for (const k of Object.keys(t))
      if (!TENANT_FIELDS.has(k)) errors.push({ path: at(k), message: 'unknown field' });
    if (typeof t.id !== 'string' || !TENANT_ID.test(t.id))
      errors.push({ path: at('id'), message: 'must match [a-z0-9][a-z0-9._-]{0,62}' });
    else if (seenIds.has(t.id)) errors.push({ path: at('id'), message: `duplicate tenant ${t.id}` });
    if (typeof t.id === 'string') seenIds.add(t.id);
    const weight = t.weight ?? 1;
    if (!Number.isFinite(weight) || weight <= 0) errors.push({ path: at('weight'), message: 'must be > 0' });
    const classes = new Set<PriorityClass>();
    if (t.classes !== undefined && !Array.isArray(t.classes))
      errors.push({ path: at('classes'), message: 'must be a list' });
    (Array.isArray(t.classes) ? t.classes : ['standard', 'batch']).forEach((c, j) => {
      if (isPriorityClass(c)) classes.add(c);
      else errors.push({ path: `${at('classes')}[${j}]`, message: 'must be interactive, standard or batch' });
    });
    if (t.classes?.length === 0) errors.push({ path: at('classes'), message: 'must not be empty' });
    const highest = (['interactive', 'standard', 'batch'] as const).find((c) => classes.has(c)) ?? 'standard';
    let defaultClass: PriorityClass = highest;
    if (t.defaultClass !== undefined) {
      if (isPriorityClass(t.defaultClass) && classes.has(t.defaultClass)) defaultClass = t.defaultClass;
      else errors.push({ path: at('defaultClass'), message: 'must be one of the allowed classes' });
    }
    const requests = budget(t.requests, at('requests'), errors);
    const tokens = budget(t.tokens, at('tokens'), errors);
    if (!Array.isArray(t.keySha256)) errors.push({ path: at('keySha256'), message: 'must be a list' });
    const tenantKeys: string[] = [];
    (Array.isArray(t.keySha256) ? t.keySha256 : []).forEach((k, j) => {
      const digest = typeof k === 'string' ? k.toLowerCase() : '';
      if (!SHA256_HEX.test(digest))
        errors.push({ path: `${at('keySha256')}[${j}]`, message: 'must be 64 hex digits (SHA-256)' });
      else if (keys.has(digest) || tenantKeys.includes(digest))
        errors.push({ path: `${at('keySha256')}[${j}]`, message: 'key already belongs to a tenant' });
      else tenantKeys.push(digest);
    });
    if (t.revokedKeySha256 !== undefined && !Array.isArray(t.revokedKeySha256))
      errors.push({ path: at('revokedKeySha256'), message: 'must be a list' });
    (Array.isArray(t.revokedKeySha256) ? t.revokedKeySha256 : []).forEach((k, j) => {
      const digest = typeof k === 'string' ? k.toLowerCase() : '';
      if (!SHA256_HEX.test(digest))
        errors.push({ path: `${at('revokedKeySha256')}[${j}]`, message: 'must be 64 hex digits (SHA-256)' });
      else revoked.add(digest);
    });
    if (errors.length > before) return;
    for (const k of tenantKeys) keys.set(k, t.id);
    tenants.set(t.id, {
      id: t.id,
      weight,
      classes,
      defaultClass,
      requests,
      tokens,
      disabled: t.disabled ?? false,
    });
  });
  for (const digest of revoked) keys.delete(digest);
  return errors.length > 0 ? err(errors) : ok({ tenants, keys, revoked });
}

function budget(b: BudgetOptions | undefined, path: string, errors: FieldError[]): Budget | undefined {
  if (b === undefined) return undefined;
  if (typeof b !== 'object' || b === null) {
    errors.push({ path, message: 'must be a mapping {perSecond, burst}' });
    return undefined;
  }
  if (!Number.isFinite(b.perSecond) || b.perSecond <= 0) {
    errors.push({ path: `${path}.perSecond`, message: 'must be > 0' });
    return undefined;
  }
  const burst = b.burst ?? Math.max(1, b.perSecond);
  if (!Number.isFinite(burst) || burst < 1) {
    errors.push({ path: `${path}.burst`, message: 'must be >= 1' });
    return undefined;
  }
  return { perSecond: b.perSecond, burst };
}
