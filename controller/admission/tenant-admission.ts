/**
 * Admission over configured tenants: the key names the tenant (TenantDirectory, digests only), the tenant's
 * allowed classes bound the class, and its budgets are spent in Redis (RateLimiter) so every controller
 * replica draws from the same buckets.
 */
import { UnauthenticatedError } from '../tenancy/errors.ts';
import type { Tenant } from '../tenancy/tenant-config.ts';
import type { TenantDirectory } from '../tenancy/tenant-directory.ts';
import type { Admission } from './admission.ts';

/** What admission needs of the rate limiter: spend a request and `tokens`, or throw OverBudgetError. */
export interface BudgetLimiter {
  admit(tenant: Tenant, tokens: number): Promise<void>;
}

export function tenantAdmission(directory: TenantDirectory, limiter: BudgetLimiter): Admission {
  return {
    identify: (apiKey, requested) => {
      const tenant = directory.authenticate(apiKey);
      return { tenant: tenant.id, weight: tenant.weight, cls: directory.resolveClass(tenant, requested) };
    },
    charge: async (who, tokens) => {
      // `who` came from identify on this directory; a tenant it does not know was not identified here.
      const tenant = directory.tenant(who.tenant);
      if (!tenant) throw new UnauthenticatedError('unknown');
      await limiter.admit(tenant, tokens);
    },
  };
}
