/**
 * Where a request's API key travels: `authorization: Bearer <key>` (what OpenAI SDKs and gRPC clients send),
 * or `x-api-key: <key>` (what some gateways and tools send instead). The transports read the header or
 * metadata value; this file only decides what it says.
 */
import type { Metadata } from '@grpc/grpc-js';
import { CorralError } from '../../common/errors.ts';

/** A present but unusable credential (e.g. `Authorization: Basic ...`): refused, never treated as absent. */
export class MalformedCredentialsError extends CorralError {
  override name = 'MalformedCredentialsError';
  constructor(header: string) {
    super('unauthenticated', `${header} must be 'Bearer <api key>'`, { header });
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The key a request presents, or undefined when it presents none (admission then decides whether that is
 * allowed). Both forms at once must agree, so a proxy that adds one cannot silently override the other.
 */
export function apiKeyOf(authorization: string | undefined, xApiKey: string | undefined): string | undefined {
  let fromAuthorization: string | undefined;
  if (authorization !== undefined && authorization !== '') {
    const m = BEARER.exec(authorization);
    if (!m?.[1]) throw new MalformedCredentialsError('authorization');
    fromAuthorization = m[1];
  }
  const fromXApiKey = xApiKey?.trim() || undefined;
  if (fromAuthorization && fromXApiKey && fromAuthorization !== fromXApiKey)
    throw new CorralError('unauthenticated', 'authorization and x-api-key name different keys; send one');
  return fromAuthorization ?? fromXApiKey;
}

/** The key a gRPC call presents in its metadata (keys are lower-case there). */
export function apiKeyOfMetadata(md: Metadata): string | undefined {
  return apiKeyOf(single(md, 'authorization'), single(md, 'x-api-key'));
}

function single(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}
