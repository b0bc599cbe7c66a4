/** Argument parsing shared by the CLI's commands: node's own parseArgs, strict, with errors that name the flag. */
import { type ParseArgsConfig, parseArgs } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommandSpec {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  positionals?: boolean;
}

export function parseCommand(
  spec: CommandSpec,
  argv: string[],
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: spec.options,
      allowPositionals: spec.positionals ?? false,
      strict: true,
    });
    return { values: values as Record<string, unknown>, positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${spec.usage}`);
  }
}

export function intFlag(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${String(raw)}'`);
  return n;
}

export function numberFlag(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${String(raw)}'`);
  return n;
}
