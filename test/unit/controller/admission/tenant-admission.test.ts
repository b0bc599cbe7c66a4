import { describe, expect, it } from 'vitest';
import { openAdmission } from '../../../../controller/admission/admission.ts';
import { type BudgetLimiter, tenantAdmission } from '../../../../controller/admission/tenant-admission.ts';
import { OverBudgetError, UnauthenticatedError } from '../../../../controller/tenancy/errors.ts';
import type { Tenant } from '../../../../controller/tenancy/tenant-config.ts';
import {
  ClassNotAllowedError,
  sha256Hex,
  TenantDirectory,
} from '../../../../controller/tenancy/tenant-directory.ts';

const KEY_A = 'sk-alpha-0123456789abcdef';
const KEY_A_REVOKED = 'sk-alpha-revoked';
const KEY_B = 'sk-beta-0123456789abcdef';

const directory = TenantDirectory.fromOptions({
  tenants: [
    {
      id: 'alpha',
      weight: 3,
      classes: ['interactive', 'standard'],
      keySha256: [sha256Hex(KEY_A)],
      revokedKeySha256: [sha256Hex(KEY_A_REVOKED)],
    },
    { id: 'beta', keySha256: [sha256Hex(KEY_B)] },
  ],
});

/** Records what admission spends; refuses whatever `refuse` says. */
function recordingLimiter(refuse?: (t: Tenant, tokens: number) => Error | undefined) {
  const spent: Array<{ tenant: string; tokens: number }> = [];
  const limiter: BudgetLimiter = {
    admit: async (t, tokens) => {
      const e = refuse?.(t, tokens);
      if (e) throw e;
      spent.push({ tenant: t.id, tokens });
    },
  };
  return { spent, limiter };
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('tenantAdmission.identify', () => {
  const admission = tenantAdmission(directory, recordingLimiter().limiter);

  it('names the tenant, its weight and its default class', () => {
    expect(admission.identify(KEY_A, undefined)).toEqual({ tenant: 'alpha', weight: 3, cls: 'interactive' });
    expect(admission.identify(KEY_B, undefined)).toEqual({ tenant: 'beta', weight: 1, cls: 'standard' });
    expect(admission.identify(KEY_B, 'batch')).toEqual({ tenant: 'beta', weight: 1, cls: 'batch' });
  });

  it.each([
    ['missing', undefined],
    ['missing', ''],
    ['unknown', 'sk-nobody'],
    ['revoked', KEY_A_REVOKED],
  ])('refuses a %s key as unauthenticated without saying which', (reason, key) => {
    const e = thrown(() => admission.identify(key, undefined));
    expect(e).toBeInstanceOf(UnauthenticatedError);
    expect(e).toMatchObject({ code: 'unauthenticated', message: 'invalid or missing API key' });
    expect((e as UnauthenticatedError).context).toEqual({ reason });
  });

  it('refuses a class the tenant was not granted as permission denied', () => {
    const e = thrown(() => admission.identify(KEY_B, 'interactive'));
    expect(e).toBeInstanceOf(ClassNotAllowedError);
    expect(e).toMatchObject({ code: 'permission_denied', tenant: 'beta', requested: 'interactive' });
  });
});

describe('tenantAdmission.charge', () => {
  it('spends the identified tenant budget with the counted tokens', async () => {
    const { spent, limiter } = recordingLimiter();
    const admission = tenantAdmission(directory, limiter);
    await admission.charge(admission.identify(KEY_A, 'standard'), 1200);
    await admission.charge(admission.identify(KEY_B, undefined), 7);
    expect(spent).toEqual([
      { tenant: 'alpha', tokens: 1200 },
      { tenant: 'beta', tokens: 7 },
    ]);
  });

  it('passes the limiter refusal through with its retry hint', async () => {
    const { limiter } = recordingLimiter((t) => new OverBudgetError(t.id, 'requests', 250));
    const admission = tenantAdmission(directory, limiter);
    await expect(admission.charge(admission.identify(KEY_A, undefined), 1)).rejects.toMatchObject({
      code: 'resource_exhausted',
      retryAfterMs: 250,
    });
  });

  it('refuses to charge a tenant the directory does not know', async () => {
    const { spent, limiter } = recordingLimiter();
    const admission = tenantAdmission(directory, limiter);
    await expect(admission.charge({ tenant: 'ghost', weight: 1, cls: 'standard' }, 1)).rejects.toBeInstanceOf(
      UnauthenticatedError,
    );
    expect(spent).toEqual([]);
  });
});

describe('openAdmission', () => {
  it('lets everyone in as the default tenant, with or without a key', async () => {
    const admission = openAdmission();
    expect(admission.identify(undefined, undefined)).toEqual({
      tenant: 'default',
      weight: 1,
      cls: 'standard',
    });
    expect(admission.identify('anything', 'interactive').cls).toBe('interactive');
    await admission.charge({ tenant: 'default', weight: 1, cls: 'batch' }, 1_000_000);
  });
});
