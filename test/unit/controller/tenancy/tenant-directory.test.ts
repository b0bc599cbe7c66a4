import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../../common/errors.ts';
import { UnauthenticatedError } from '../../../../controller/tenancy/errors.ts';
import { compileTenancy } from '../../../../controller/tenancy/tenant-config.ts';
import {
  ClassNotAllowedError,
  sha256Hex,
  TenantDirectory,
} from '../../../../controller/tenancy/tenant-directory.ts';

const KEY_A = 'sk-alpha-0123456789abcdef';
const KEY_A_OLD = 'sk-alpha-old';
const KEY_B = 'sk-beta-0123456789abcdef';
const KEY_OFF = 'sk-disabled';

function directory(): TenantDirectory {
  return TenantDirectory.fromOptions({
    tenants: [
      {
        id: 'alpha',
        weight: 3,
        classes: ['interactive', 'standard'],
        requests: { perSecond: 10 },
        tokens: { perSecond: 1000, burst: 50_000 },
        keySha256: [sha256Hex(KEY_A)],
        revokedKeySha256: [sha256Hex(KEY_A_OLD)],
      },
      { id: 'beta', keySha256: [sha256Hex(KEY_B).toUpperCase()] },
      { id: 'off', disabled: true, keySha256: [sha256Hex(KEY_OFF)] },
    ],
  });
}

describe('TenantDirectory', () => {
  it('maps a key to its tenant with compiled defaults', () => {
    const d = directory();
    const a = d.authenticate(KEY_A);
    expect(a.id).toBe('alpha');
    expect(a.weight).toBe(3);
    expect(a.defaultClass).toBe('interactive');
    expect(a.requests).toEqual({ perSecond: 10, burst: 10 });
    expect(a.tokens).toEqual({ perSecond: 1000, burst: 50_000 });
    const b = d.authenticate(KEY_B); // digests are case-insensitive hex
    expect(b).toMatchObject({ id: 'beta', weight: 1, defaultClass: 'standard', requests: undefined });
    expect([...b.classes]).toEqual(['standard', 'batch']);
  });

  it.each([
    ['missing', undefined],
    ['missing', ''],
    ['unknown', 'sk-nobody'],
    ['revoked', KEY_A_OLD],
    ['revoked', KEY_OFF],
  ])('rejects a %s key without saying which in the message', (reason, key) => {
    const d = directory();
    let caught: unknown;
    try {
      d.authenticate(key);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(UnauthenticatedError);
    expect((caught as UnauthenticatedError).code).toBe('unauthenticated');
    expect((caught as UnauthenticatedError).message).toBe('invalid or missing API key');
    expect((caught as UnauthenticatedError).context).toEqual({ reason });
  });

  it('resolves the priority class a request asks for', () => {
    const d = directory();
    const b = d.authenticate(KEY_B);
    expect(d.resolveClass(b, undefined)).toBe('standard');
    expect(d.resolveClass(b, 'batch')).toBe('batch');
    expect(() => d.resolveClass(b, 'interactive')).toThrow(ClassNotAllowedError);
  });

  it('collects every configuration error with its path', () => {
    const r = compileTenancy({
      tenants: [
        { id: 'Bad Id', weight: 0, keySha256: ['abc'] },
        { id: 'ok', classes: ['urgent'], tokens: { perSecond: -1 }, keySha256: [] },
        { id: 'ok', keySha256: [] },
        { id: 'x', defaultClass: 'interactive', keySha256: [] },
      ],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => e.path)).toEqual([
      'tenants[0].id',
      'tenants[0].weight',
      'tenants[0].keySha256[0]',
      'tenants[1].classes[0]',
      'tenants[1].tokens.perSecond',
      'tenants[2].id',
      'tenants[3].defaultClass',
    ]);
  });

  it('reports malformed entries with their paths instead of crashing', () => {
    const r = compileTenancy({
      tenants: [
        null,
        { id: 'a', classes: 'standard', keySha256: 'abc', revokedKeySha256: 'x', requests: null },
        { id: 'b', keysha256: [], keySha256: [] },
      ],
    } as never);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'tenants[0]: must be a mapping',
      'tenants[1].classes: must be a list',
      'tenants[1].requests: must be a mapping {perSecond, burst}',
      'tenants[1].keySha256: must be a list',
      'tenants[1].revokedKeySha256: must be a list',
      'tenants[2].keysha256: unknown field',
    ]);
  });

  it('refuses a key shared by two tenants', () => {
    const h = sha256Hex('shared');
    expect(() =>
      TenantDirectory.fromOptions({
        tenants: [
          { id: 'a', keySha256: [h] },
          { id: 'b', keySha256: [h] },
        ],
      }),
    ).toThrow(ValidationError);
  });
});

describe('TenantDirectory.fromFile', () => {
  it('loads a tenant file and reports a bad one with its path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'corral-tenants-'));
    try {
      const good = join(dir, 'tenants.json');
      writeFileSync(good, JSON.stringify({ tenants: [{ id: 'alpha', keySha256: [sha256Hex(KEY_A)] }] }));
      expect((await TenantDirectory.fromFile(good)).authenticate(KEY_A).id).toBe('alpha');
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ tenants: [{ id: 'alpha', weight: -1, keySha256: [] }] }));
      await expect(TenantDirectory.fromFile(bad)).rejects.toThrow(
        `invalid tenant file ${bad}: tenants[0].weight: must be > 0`,
      );
      const broken = join(dir, 'broken.json');
      writeFileSync(broken, '{"tenants": [');
      await expect(TenantDirectory.fromFile(broken)).rejects.toThrow(ValidationError);
      const yaml = join(dir, 'tenants.yaml');
      writeFileSync(yaml, `tenants:\n  - id: beta\n    keySha256: [${sha256Hex(KEY_B)}]\n`);
      expect((await TenantDirectory.fromFile(yaml)).authenticate(KEY_B).id).toBe('beta');
      await expect(TenantDirectory.fromFile(join(dir, 'missing.yaml'))).rejects.toThrow(
        /invalid tenant file .*missing\.yaml: \(file\): cannot read: ENOENT/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
