/**
 * Trace replay in the Mooncake format (kvcache-ai/Mooncake traces, also read by NVIDIA's aiperf and dynamo): one
 * JSON object per line, {"timestamp": ms since the first request, "input_length", "output_length", "hash_ids"},
 * where hash_ids name the prompt's blocks of 512 tokens and equal leading ids mean a shared prefix. Each hash id
 * becomes a 512-token segment whose tokens depend on the id alone, so equal ids give equal tokens (and equal
 * 16-token blocks, as the engine hashes them); tokens past the ids are unique to the request.
 */

import type { SimRequest, Workload } from '../workload.ts';
import { contentKey } from './prompt-segments.ts';

export const TRACE_BLOCK_TOKENS = 512;

export class TraceParseError extends Error {
  override readonly name = 'TraceParseError';
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`trace line ${line}: ${message}`);
  }
}

function field(o: Record<string, unknown>, name: string, line: number): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new TraceParseError(line, `${name} must be a number >= 0, got ${JSON.stringify(v)}`);
  return v;
}

export function parseTrace(
  text: string,
  options: { name?: string; warmupMs?: number; timeScale?: number } = {},
): Workload {
  const scale = options.timeScale ?? 1;
  const requests: SimRequest[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === '') continue;
    const line = i + 1;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      throw new TraceParseError(line, `not JSON (${(e as Error).message})`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o))
      throw new TraceParseError(line, 'not a JSON object');
    const rec = o as Record<string, unknown>;
    const timestamp = field(rec, 'timestamp', line);
    const input = Math.round(field(rec, 'input_length', line));
    const output = Math.max(1, Math.round(field(rec, 'output_length', line)));
    const ids = rec.hash_ids ?? [];
    if (!Array.isArray(ids) || ids.some((h) => typeof h !== 'number' || !Number.isInteger(h)))
      throw new TraceParseError(line, 'hash_ids must be an array of integers');
    const last = requests[requests.length - 1];
    if (last && timestamp * scale < last.arrivalMs)
      throw new TraceParseError(line, `timestamp ${timestamp} is before the previous line's`);
    // The segments' tokens: each hash id covers 512 tokens, the last one what is left of input_length.
    const segments = (ids as number[]).map((h, k) => ({
      key: contentKey(7, h),
      tokens: Math.max(0, Math.min(TRACE_BLOCK_TOKENS, input - k * TRACE_BLOCK_TOKENS)),
    }));
    const covered = segments.reduce((n, s) => n + s.tokens, 0);
    // Tokens past the hash ids are unique to this request.
    if (covered < input) segments.push({ key: contentKey(8, line), tokens: input - covered });
    requests.push({
      id: requests.length,
      arrivalMs: timestamp * scale,
      tenant: 'trace',
      promptTokens: input,
      outputTokens: output,
      segments: segments.filter((s) => s.tokens > 0),
      outputKey: contentKey(9, line),
    });
  }
  if (requests.length === 0) throw new TraceParseError(0, 'no requests in the trace');
  return {
    name: options.name ?? 'trace',
    requests,
    durationMs: (requests[requests.length - 1] as SimRequest).arrivalMs,
    warmupMs: options.warmupMs ?? 0,
  };
}
