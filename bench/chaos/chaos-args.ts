/**
 * `npm run chaos -- [--requests N] [--concurrency N] [--rate R] [--seed N] [--json] [--keep-logs]`, parsed and checked: every
 * problem is named (exit 2), since a chaos run that silently ran with other numbers would claim the wrong thing.
 */
import { parseArgs } from 'node:util';

export interface ChaosArgs {
  /** Streamed requests submitted over the run. */
  requests: number;
  /** At most this many requests in flight at once (arrivals wait beyond it). */
  concurrency: number;
  /** Mean arrivals per second (Poisson), so the faults find requests at every stage. */
  rate: number;
  /** Seeds the arrivals, the prompts, max_tokens and each request's sampling seed. */
  seed: number;
  json: boolean;
  /** Keep every process's log after a clean run too (a failed run always keeps them). */
  keepLogs: boolean;
}

export const CHAOS_DEFAULTS: ChaosArgs = {
  requests: 500,
  concurrency: 96,
  rate: 12,
  seed: 1,
  json: false,
  keepLogs: false,
};

export type ParsedArgs = { t: 'ok'; args: ChaosArgs } | { t: 'error'; message: string };

export function parseChaosArgs(argv: readonly string[]): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        requests: { type: 'string' },
        concurrency: { type: 'string' },
        rate: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean' },
        'keep-logs': { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return { t: 'error', message: e instanceof Error ? e.message : String(e) };
  }
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      problems.push(`--${name} must be an integer in [${min}, ${max}], got "${raw}"`);
      return fallback;
    }
    return n;
  };
  const requests = int('requests', CHAOS_DEFAULTS.requests, 1, 100_000);
  const concurrency = int('concurrency', CHAOS_DEFAULTS.concurrency, 1, 1024);
  const seed = int('seed', CHAOS_DEFAULTS.seed, 0, 2 ** 31 - 1);
  let rate = CHAOS_DEFAULTS.rate;
  if (values.rate !== undefined) {
    rate = Number(values.rate);
    if (typeof values.rate !== 'string' || !(rate > 0 && rate <= 1000)) {
      problems.push(`--rate must be a number of requests per second in (0, 1000], got "${values.rate}"`);
      rate = CHAOS_DEFAULTS.rate;
    }
  }
  if (problems.length > 0) return { t: 'error', message: problems.join('; ') };
  const flags = { json: values.json === true, keepLogs: values['keep-logs'] === true };
  return { t: 'ok', args: { requests, concurrency, rate, seed, ...flags } };
}
