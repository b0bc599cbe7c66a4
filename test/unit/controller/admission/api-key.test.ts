import { describe, expect, it } from 'vitest';
import { apiKeyOf, MalformedCredentialsError } from '../../../../controller/admission/api-key.ts';

describe('apiKeyOf', () => {
  it.each([
    ['Bearer sk-1', undefined, 'sk-1'],
    ['bearer   sk-1  ', undefined, 'sk-1'],
    [undefined, 'sk-2', 'sk-2'],
    [undefined, ' sk-2 ', 'sk-2'],
    ['Bearer sk-3', 'sk-3', 'sk-3'],
    [undefined, undefined, undefined],
    ['', '', undefined],
  ])('authorization %j, x-api-key %j -> %j', (authorization, xApiKey, key) => {
    expect(apiKeyOf(authorization, xApiKey)).toBe(key);
  });

  it.each(['Basic dTpw', 'Bearer', 'Bearer a b', 'sk-1'])(
    'refuses authorization %j rather than treating it as no key',
    (authorization) => {
      expect(() => apiKeyOf(authorization, undefined)).toThrow(MalformedCredentialsError);
    },
  );

  it('refuses two different keys', () => {
    expect(() => apiKeyOf('Bearer sk-1', 'sk-2')).toThrow(
      expect.objectContaining({ code: 'unauthenticated' }),
    );
  });
});
