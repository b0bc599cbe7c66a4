/**
 * Reads the engine's load from its Prometheus text exposition (GET /metrics). Only the samples corral needs
 * are kept; names come from metric-names.ts. A reading absent under every known name is left undefined (not
 * 0), so an unsupported vLLM version shows up as missing data rather than as an idle engine.
 */
import { type EngineReading, METRIC_NAMES } from './metric-names.ts';

export type EngineLoad = { [K in EngineReading]: number | undefined };

/** name -> values of every series of that name (one per label set). Comments and malformed lines are skipped. */
export function parsePrometheusText(text: string, wanted?: ReadonlySet<string>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (!sample || (wanted && !wanted.has(sample.name))) continue;
    const list = out.get(sample.name) ?? [];
    list.push(sample.value);
    out.set(sample.name, list);
  }
  return out;
}

/** `name{label="v",...} value [timestamp]`; label values may contain spaces, braces and escaped quotes. */
export function parseSampleLine(line: string): { name: string; value: number } | undefined {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!m?.[1]) return undefined;
  const name = m[1];
  let i = name.length;
  if (line[i] === '{') {
    let inQuote = false;
    for (i += 1; i < line.length; i++) {
      const c = line[i];
      if (inQuote && c === '\\') i++;
      else if (c === '"') inQuote = !inQuote;
      else if (!inQuote && c === '}') break;
    }
    if (i >= line.length) return undefined;
    i++;
  }
  const valueText = line.slice(i).trim().split(/\s+/)[0];
  if (valueText === undefined || valueText === '') return undefined;
  const value = parsePromNumber(valueText);
  return value === undefined ? undefined : { name, value };
}

function parsePromNumber(s: string): number | undefined {
  if (s === 'NaN') return Number.NaN;
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

const ALL_NAMES = new Set(Object.values(METRIC_NAMES).flatMap((m) => m.names));

export function readEngineLoad(text: string): EngineLoad {
  const samples = parsePrometheusText(text, ALL_NAMES);
  const load = {} as EngineLoad;
  for (const [reading, spec] of Object.entries(METRIC_NAMES) as [
    EngineReading,
    (typeof METRIC_NAMES)[EngineReading],
  ][]) {
    load[reading] = undefined;
    for (const name of spec.names) {
      const values = samples.get(name)?.filter((v) => Number.isFinite(v));
      if (!values || values.length === 0) continue;
      const sum = values.reduce((a, b) => a + b, 0);
      load[reading] = spec.aggregate === 'sum' ? sum : sum / values.length;
      break;
    }
  }
  return load;
}
