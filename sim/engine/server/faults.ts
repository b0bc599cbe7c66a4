/**
 * Fault injection for tests of supervision and failover, set by `--sim-*` flags, per request by the
 * `X-Sim-Fault` header, or at run time through `POST /sim/fault`:
 *   - error answers: a rate of 503 / 429 on generation requests, or one forced status per request by header;
 *   - engine failures: crash (process exits non-zero, like an API server whose engine core died), dead (/health
 *     503, requests 500, vLLM's EngineDeadError), hang (no tokens while /health stays 200), now or armed: after
 *     N more generated tokens (TokenFaults) or T simulated ms from now.
 * Start-up faults (slow start = --sim-startup-ms, failed start = --sim-fail-start) are handled in main.ts.
 */
import { HttpError } from './openai-request.ts';

export type EngineFault = 'crash' | 'dead' | 'hang';

export interface FaultRates {
  /** Fraction of generation requests answered 503. */
  rate503: number;
  /** Fraction of generation requests answered 429. */
  rate429: number;
}

const STATUS_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  429: 'RateLimitError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
};

/** A deterministic stream of uniforms (mulberry32), so a seeded run fails the same requests every time. */
export function uniforms(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * The error to answer a generation request with, or null. The header value is a status code (400, 429, 500,
 * 503) or an engine fault name, which the caller applies to the whole engine.
 */
export function requestFault(
  header: string | undefined,
  rates: FaultRates,
  u: () => number,
): HttpError | EngineFault | null {
  if (header !== undefined && header !== '') {
    if (header === 'crash' || header === 'dead' || header === 'hang') return header;
    const status = Number(header);
    const type = STATUS_TYPES[status];
    if (type) return new HttpError(status, type, `fault injected by X-Sim-Fault: ${status}`);
    return new HttpError(
      400,
      'BadRequestError',
      `X-Sim-Fault: expected 400, 429, 500, 503, crash, dead or hang, got "${header}"`,
    );
  }
  const x = u();
  if (x < rates.rate503)
    return new HttpError(503, 'ServiceUnavailableError', 'The server is overloaded (fault injected).');
  if (x < rates.rate503 + rates.rate429)
    return new HttpError(429, 'RateLimitError', 'Too many requests (fault injected).');
  return null;
}

/**
 * Faults that fire when the engine's total of generated tokens reaches a mark: crash (the process dies) or hang
 * (the engine stops stepping). Armed by --sim-crash-after-tokens / --sim-hang-after-tokens (totals since start)
 * or by POST /sim/fault (counted from the moment it is armed).
 */
export class TokenFaults {
  constructor(
    private crashAt: number | undefined,
    private hangAt: number | undefined,
  ) {}

  arm(kind: 'crash' | 'hang', afterMore: number, totalNow: number): void {
    if (kind === 'crash') this.crashAt = totalNow + afterMore;
    else this.hangAt = totalNow + afterMore;
  }

  /** The fault due at this total, once (a hang fires once; a crash ends the process). */
  due(total: number): 'crash' | 'hang' | null {
    if (this.crashAt !== undefined && total >= this.crashAt) return 'crash';
    if (this.hangAt !== undefined && total >= this.hangAt) {
      this.hangAt = undefined;
      return 'hang';
    }
    return null;
  }
}
