/**
 * The structured logger of every service, on pino. Each line is
 * `LEVEL message key=value …` so that `npm start`, which prefixes every
 * child's lines with the service name, stays readable, and
 * `SLUICE_LOG_FORMAT=json` gives one JSON object per line (`time`, `level`,
 * `message` and the fields) for log shippers. Warnings and errors go to
 * stderr, the rest to stdout. `SLUICE_LOG_LEVEL` (debug, info, warn, error)
 * is read when a logger is created; a level below it costs one comparison.
 */
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function levelFromEnv(): LogLevel {
  const level = process.env.SLUICE_LOG_LEVEL as LogLevel | undefined;
  return level && LEVELS.includes(level) ? level : 'info';
}

/** An Error anywhere in the fields is logged as its message, in both formats, as before pino. */
function withoutErrors(fields: Record<string, unknown>): Record<string, unknown> {
  for (const key in fields) {
    if (fields[key] instanceof Error) return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v]));
  }
  return fields;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** `LEVEL message key=value …` from one of pino's records. */
function textLine({ level, time: _time, message, ...fields }: Record<string, unknown>): string {
  return [String(level).toUpperCase().padEnd(5), message, ...Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`)].join(' ') + '\n';
}

const isLoud = (level: unknown) => level === 'warn' || level === 'error';

// process.stdout/stderr are looked up on each write so that whoever replaces
// them (a test, a supervisor) sees the lines, as with the logger before pino.
const jsonDestination = pino.multistream(
  [
    { level: 'debug', stream: { write: (line: string) => process.stdout.write(line) } },
    { level: 'warn', stream: { write: (line: string) => process.stderr.write(line) } },
  ],
  { dedupe: true },
);

const textDestination = {
  write(json: string) {
    const record = JSON.parse(json) as Record<string, unknown>;
    (isLoud(record.level) ? process.stderr : process.stdout).write(textLine(record));
  },
};

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const json = process.env.SLUICE_LOG_FORMAT === 'json';
  const root = pino(
    {
      level: levelFromEnv(),
      base: null,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      // pino's own `err` serializer would log stacks under one key only; every Error is its message here.
      serializers: {},
      formatters: {
        level: (label) => ({ level: label }),
        bindings: withoutErrors,
        log: withoutErrors,
      },
    },
    json ? jsonDestination : textDestination,
  );
  return wrap(Object.keys(base).length ? root.child(base) : root);
}

function wrap(logger: pino.Logger): Logger {
  return {
    debug: (message, fields) => (fields ? logger.debug(fields, message) : logger.debug(message)),
    info: (message, fields) => (fields ? logger.info(fields, message) : logger.info(message)),
    warn: (message, fields) => (fields ? logger.warn(fields, message) : logger.warn(message)),
    error: (message, fields) => (fields ? logger.error(fields, message) : logger.error(message)),
    child: (fields) => wrap(logger.child(fields)),
  };
}
