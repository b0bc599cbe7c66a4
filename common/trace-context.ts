/**
 * W3C trace context (https://www.w3.org/TR/trace-context/): `traceparent: 00-<trace id>-<span id>-<flags>`.
 * Carried in gRPC metadata from client to controller to worker, and as an HTTP header to the engine, so one
 * request's lines can be joined across processes before full OpenTelemetry tracing is wired in.
 */
import { randomFillSync } from 'node:crypto';

export const TRACEPARENT = 'traceparent';

export interface TraceContext {
  traceId: string; // 32 hex
  spanId: string; // 16 hex
  sampled: boolean;
}

const PATTERN = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (!value) return undefined;
  const m = PATTERN.exec(value.trim().toLowerCase());
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  if (/^0+$/.test(m[1]) || /^0+$/.test(m[2])) return undefined; // all-zero ids are invalid by the spec
  return { traceId: m[1], spanId: m[2], sampled: (Number.parseInt(m[3], 16) & 1) === 1 };
}

export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '01' : '00'}`;
}

/** A child span of `parent` (same trace, new span id), or a new trace when there is no parent. */
export function childContext(parent?: TraceContext): TraceContext {
  return {
    traceId: parent?.traceId ?? randomHex(16),
    spanId: randomHex(8),
    sampled: parent?.sampled ?? true,
  };
}

/**
 * Random bytes for ids, drawn from a pool filled 4 KiB at a time: a dispatch makes a span id (and a trace id
 * when the client sent none), and a randomBytes() call per id cost more than the rest of the id's work.
 */
const pool = Buffer.alloc(4096);
let poolUsed = pool.length;

function randomHex(bytes: number): string {
  if (poolUsed + bytes > pool.length) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const hex = pool.toString('hex', poolUsed, poolUsed + bytes);
  poolUsed += bytes;
  return hex;
}
