/**
 * W3C trace context (https://www.w3.org/TR/trace-context/): `traceparent: 00-<trace id>-<span id>-<flags>`.
 * Carried in gRPC metadata from client to controller to worker, and as an HTTP header to the engine, so one
 * request's lines can be joined across processes before full OpenTelemetry tracing is wired in.
 */
import { randomBytes } from 'node:crypto';

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
    traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    sampled: parent?.sampled ?? true,
  };
}
