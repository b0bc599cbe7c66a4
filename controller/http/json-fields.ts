/**
 * Typed reads of one JSON request object, each failure an HttpError naming the field in the words OpenAI's
 * API uses ("Invalid type for 'temperature': expected a number, but got a string instead."), so a client
 * that handles OpenAI's messages handles ours. `null` counts as absent, as it does for OpenAI.
 */
import { HttpError } from './http-errors.ts';

export type JsonObject = Record<string, unknown>;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number' && Number.isInteger(v)) return 'an integer';
  if (typeof v === 'number') return 'a decimal';
  if (typeof v === 'boolean') return 'a boolean';
  return `a ${typeof v}`;
}

export function typeError(field: string, expected: string, got: unknown): HttpError {
  return new HttpError(
    400,
    `Invalid type for '${field}': expected ${expected}, but got ${describe(got)} instead.`,
    field,
  );
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses fields OpenAI does not define for this endpoint, as OpenAI does (vLLM would ignore them silently). */
export function rejectUnknown(obj: JsonObject, known: ReadonlySet<string>, prefix = ''): void {
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) {
      throw new HttpError(400, `Unrecognized request argument supplied: ${prefix}${k}`, `${prefix}${k}`);
    }
  }
}

export function optString(obj: JsonObject, field: string, path = field): string | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw typeError(path, 'a string', v);
  return v;
}

export function optBoolean(obj: JsonObject, field: string, path = field): boolean | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw typeError(path, 'a boolean', v);
  return v;
}

export interface Range {
  min?: number;
  max?: number;
  /** The minimum itself is not allowed (top_p > 0). */
  exclusiveMin?: boolean;
}

export function optNumber(obj: JsonObject, field: string, range: Range = {}): number | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(field, 'a number', v);
  checkRange(field, 'decimal', v, range);
  return v;
}

export function optInteger(obj: JsonObject, field: string, range: Range = {}): number | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw typeError(field, 'an integer', v);
  checkRange(field, 'integer', v, range);
  return v;
}

function checkRange(field: string, kind: string, v: number, r: Range): void {
  if (r.min !== undefined && (v < r.min || (r.exclusiveMin === true && v === r.min))) {
    const op = r.exclusiveMin ? '>' : '>=';
    throw new HttpError(
      400,
      `Invalid '${field}': ${kind} below minimum value. Expected a value ${op} ${r.min}, but got ${v} instead.`,
      field,
    );
  }
  if (r.max !== undefined && v > r.max) {
    throw new HttpError(
      400,
      `Invalid '${field}': ${kind} above maximum value. Expected a value <= ${r.max}, but got ${v} instead.`,
      field,
    );
  }
}

/**
 * A parameter corral accepts only at its neutral value (e.g. `frequency_penalty: 0`): clients that always send
 * the default keep working, and a request that relies on the feature is told plainly instead of served wrong.
 */
export function onlyNeutral(obj: JsonObject, field: string, neutral: readonly unknown[]): void {
  const v = obj[field];
  if (v === undefined || v === null || neutral.some((n) => n === v)) return;
  if (Array.isArray(v) && v.length === 0) return;
  if (isObject(v) && Object.keys(v).length === 0) return;
  throw new HttpError(400, `'${field}' is not supported by this server.`, field);
}
