/**
 * A small structured logger. Each line is `LEVEL message key=value …` so that
 * `npm start`, which prefixes every child's lines with the service name, stays
 * readable, and `SLUICE_LOG_FORMAT=json` gives one JSON object per line for
 * log shippers.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function threshold(): number {
  const level = (process.env.SLUICE_LOG_LEVEL ?? 'info') as LogLevel;
  return ORDER[level] ?? ORDER.info;
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const min = threshold();
  const json = process.env.SLUICE_LOG_FORMAT === 'json';
  const write = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const all = { ...base, ...fields };
    const line = json
      ? JSON.stringify({ time: new Date().toISOString(), level, message, ...all }, (_k, v) =>
          v instanceof Error ? v.message : v,
        )
      : [level.toUpperCase().padEnd(5), message, ...Object.entries(all).map(([k, v]) => `${k}=${formatValue(v)}`)].join(' ');
    (level === 'error' || level === 'warn' ? process.stderr : process.stdout).write(line + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}
