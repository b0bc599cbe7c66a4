/**
 * Structured JSON logging: one object per line on stderr, so stdout stays free for a command's output.
 * Every line carries its component; request-scoped loggers carry the request id (and trace id) too.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields` as well. */
  child(fields: LogFields): Logger;
}

export type LogSink = (line: string) => void;

function envLevel(): LogLevel {
  const v = process.env.CORRAL_LOG_LEVEL;
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' ? v : 'info';
}

const stderrSink: LogSink = (line) => {
  process.stderr.write(`${line}\n`);
};

export function createLogger(
  component: string,
  options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {},
): Logger {
  const min = LEVEL_ORDER[options.level ?? envLevel()];
  const sink = options.sink ?? stderrSink;
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (LEVEL_ORDER[level] < min) return;
      sink(
        JSON.stringify({
          ts: new Date().toISOString(),
          level,
          component,
          msg,
          ...base,
          ...serialize(fields),
        }),
      );
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make(options.fields ?? {});
}

/** Errors do not survive JSON.stringify; keep their name, message and cause chain. */
function serialize(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? errorFields(v) : v;
  return out;
}

export function errorFields(err: Error): LogFields {
  const fields: LogFields = { name: err.name, message: err.message };
  if (err.cause instanceof Error) fields.cause = errorFields(err.cause);
  return fields;
}

const ignore = () => {};

/**
 * A logger that drops everything (for tests and benches that do not look at logs). It builds nothing: a
 * discarding sink behind createLogger still cost every line its JSON and timestamp.
 */
export const silentLogger: Logger = {
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
  child: () => silentLogger,
};
