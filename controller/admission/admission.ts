/**
 * Admission: who is asking (API key -> tenant), in which queue class, and whether the tenant's budgets allow
 * one more request. The request path asks it twice: `identify` before anything else (a bad key costs nothing),
 * `charge` once the prompt is counted (the token budget needs prompt + max tokens). Nothing is queued before
 * both said yes.
 */
import type { PriorityClass } from '../queue/priority-class.ts';

export interface Admitted {
  tenant: string;
  /** The tenant's share of its class relative to other tenants (the queue's fair sharing). */
  weight: number;
  cls: PriorityClass;
}

export interface Admission {
  /**
   * Sync, no I/O. Throws UnauthenticatedError for a missing, unknown or revoked key, ClassNotAllowedError
   * when the tenant may not use the class it asked for. `requested` undefined: the tenant's default class.
   */
  identify(apiKey: string | undefined, requested: PriorityClass | undefined): Admitted;
  /** Spends one request and `tokens` of the tenant's budgets atomically, or throws OverBudgetError. */
  charge(who: Admitted, tokens: number): Promise<void>;
}

/**
 * No tenants configured (a laptop, a test): every caller is the tenant `default`, weight 1, in the class it
 * asks for (standard when it names none), with no budgets. A deployment with tenants uses the tenant
 * directory instead, and then every request needs a key.
 */
export function openAdmission(): Admission {
  return {
    identify: (_apiKey, requested) => ({ tenant: 'default', weight: 1, cls: requested ?? 'standard' }),
    charge: async () => {},
  };
}
