/**
 * The HTTP front door with tenants configured: where the key is read (Authorization: Bearer, X-Api-Key), which
 * routes need one (/v1/models yes, /health no), and how admission refusals look to the official openai SDK
 * (AuthenticationError, RateLimitError with Retry-After in whole seconds, rounded up).
 */
import OpenAI from 'openai';
import { beforeEach, describe, expect, it } from 'vitest';
import { tenantAdmission } from '../../../../controller/admission/tenant-admission.ts';
import { OverBudgetError, UnauthenticatedError } from '../../../../controller/tenancy/errors.ts';
import { sha256Hex, TenantDirectory } from '../../../../controller/tenancy/tenant-directory.ts';
import { FakeRequestPath, usePathServer } from './fake-request-path.ts';

const KEY = 'sk-acme-0123456789abcdef';
const REVOKED = 'sk-acme-revoked';
const directory = TenantDirectory.fromOptions({
  tenants: [{ id: 'acme', keySha256: [sha256Hex(KEY)], revokedKeySha256: [sha256Hex(REVOKED)] }],
});

const path = new FakeRequestPath();
const base = usePathServer(path, {
  // No budgets here: the models route never charges, and completions' charges are the path's.
  admission: tenantAdmission(directory, { admit: async () => {} }),
});

beforeEach(() => {
  path.calls.length = 0;
});

const sdk = (apiKey: string) => new OpenAI({ baseURL: `${base()}/v1`, apiKey, maxRetries: 0 });
const messages = [{ role: 'user' as const, content: 'Hi' }];

describe('which routes need a key', () => {
  it('/v1/models answers a valid key and refuses a missing, unknown or revoked one with 401', async () => {
    expect((await fetch(`${base()}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status).toBe(
      200,
    );
    const refused: Record<string, string>[] = [
      {},
      { authorization: 'Bearer sk-nobody' },
      { authorization: `Bearer ${REVOKED}` },
    ];
    for (const headers of refused) {
      const res = await fetch(`${base()}/v1/models`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: { message: 'invalid or missing API key', type: 'AuthenticationError', param: null, code: 401 },
      });
    }
  });

  it('/health stays open for probes', async () => {
    expect((await fetch(`${base()}/health`)).status).toBe(200);
  });

  it('the openai SDK sees a bad key on models.list as AuthenticationError', async () => {
    expect((await sdk(KEY).models.list()).data.map((m) => m.id)).toEqual(['m']);
    await expect(sdk('sk-nobody').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('where the key is read', () => {
  it('takes X-Api-Key as well as Authorization: Bearer, and refuses the two naming different keys', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${base()}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'm', prompt: 'x' }),
      });
    expect((await post({ 'x-api-key': KEY })).status).toBe(200);
    expect(path.calls[0]?.ctx.apiKey).toBe(KEY);
    expect((await post({ 'x-api-key': KEY, authorization: `Bearer ${KEY}` })).status).toBe(200);
    const conflict = await post({ 'x-api-key': KEY, authorization: 'Bearer sk-other' });
    expect(conflict.status).toBe(401);
    expect(((await conflict.json()) as { error: { message: string } }).error.message).toBe(
      'authorization and x-api-key name different keys; send one',
    );
    const basic = await post({ authorization: 'Basic dTpw' });
    expect(basic.status).toBe(401);
    expect(((await basic.json()) as { error: { message: string } }).error.message).toBe(
      "authorization must be 'Bearer <api key>'",
    );
    expect(path.calls).toHaveLength(2);
  });
});

describe('admission refusals through the openai SDK', () => {
  it('unauthenticated is AuthenticationError, streaming or not', async () => {
    path.script = () => [{ t: 'throw', error: new UnauthenticatedError('unknown') }];
    await expect(sdk('sk-nobody').chat.completions.create({ model: 'm', messages })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    await expect(
      sdk('sk-nobody').chat.completions.create({ model: 'm', messages, stream: true }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('over budget is RateLimitError with Retry-After in seconds, rounded up', async () => {
    path.script = () => [{ t: 'throw', error: new OverBudgetError('acme', 'tokens', 1200) }];
    const e = await sdk(KEY)
      .chat.completions.create({ model: 'm', messages })
      .then(
        () => undefined,
        (x: unknown) => x,
      );
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    const rate = e as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rate.headers.get('retry-after')).toBe('2');
    expect(rate.message).toContain('tenant acme is over its tokens budget; retry in 1200 ms');
  });
});
