import { createLogger } from './log';

/** The lines written to stdout and stderr while `fn` runs, with the environment set as given. */
function capture(env: Record<string, string | undefined>, fn: () => void): { out: string[]; err: string[] } {
  const saved = { SLUICE_LOG_LEVEL: process.env.SLUICE_LOG_LEVEL, SLUICE_LOG_FORMAT: process.env.SLUICE_LOG_FORMAT };
  const out: string[] = [];
  const err: string[] = [];
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  try {
    for (const [key, value] of Object.entries(env)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    fn();
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  return { out, err };
}

describe('text format (the default)', () => {
  it('writes LEVEL message key=value, base fields then the line fields, quoting values with spaces', () => {
    const { out } = capture({ SLUICE_LOG_LEVEL: 'info', SLUICE_LOG_FORMAT: undefined }, () => {
      createLogger({ service: 'gateway' }).info('ready', { url: 'http://localhost:4000/graphql', note: 'two words', n: 3, ok: true });
    });
    expect(out).toEqual(['INFO  ready service=gateway url=http://localhost:4000/graphql note="two words" n=3 ok=true\n']);
  });

  it('sends warnings and errors to stderr, the rest to stdout', () => {
    const { out, err } = capture({ SLUICE_LOG_LEVEL: 'debug', SLUICE_LOG_FORMAT: undefined }, () => {
      const log = createLogger();
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
    });
    expect(out).toEqual(['DEBUG d\n', 'INFO  i\n']);
    expect(err).toEqual(['WARN  w\n', 'ERROR e\n']);
  });

  it('logs an Error as its message', () => {
    const { err } = capture({ SLUICE_LOG_FORMAT: undefined }, () => createLogger().error('failed', { error: new Error('connection refused'), err: new Error('boom') }));
    expect(err).toEqual(['ERROR failed error="connection refused" err=boom\n']);
  });
});

describe('JSON format', () => {
  it('writes one JSON object per line with time, level, message and every field', () => {
    const { out } = capture({ SLUICE_LOG_FORMAT: 'json', SLUICE_LOG_LEVEL: 'info' }, () => {
      createLogger({ service: 'gateway' })
        .child({ requestId: 'r-1', traceId: 'abc' })
        .info('operation', { outcome: 'ok', error: new Error('shown as its message') });
    });
    expect(out).toHaveLength(1);
    expect(out[0].endsWith('}\n')).toBe(true);
    expect(out[0].trimEnd()).not.toContain('\n');
    const line = JSON.parse(out[0]);
    expect(line).toEqual({ time: expect.any(String), level: 'info', message: 'operation', service: 'gateway', requestId: 'r-1', traceId: 'abc', outcome: 'ok', error: 'shown as its message' });
    expect(new Date(line.time).toISOString()).toBe(line.time);
  });

  it('sends warnings and errors to stderr', () => {
    const { out, err } = capture({ SLUICE_LOG_FORMAT: 'json', SLUICE_LOG_LEVEL: 'info' }, () => {
      const log = createLogger();
      log.info('i');
      log.warn('w');
      log.error('e');
    });
    expect(out.map((l) => JSON.parse(l).level)).toEqual(['info']);
    expect(err.map((l) => JSON.parse(l).level)).toEqual(['warn', 'error']);
  });
});

describe('SLUICE_LOG_LEVEL', () => {
  it('drops lines below the level, for the logger and its children', () => {
    const { out, err } = capture({ SLUICE_LOG_LEVEL: 'warn', SLUICE_LOG_FORMAT: undefined }, () => {
      const log = createLogger();
      log.info('dropped');
      log.child({ requestId: 'r' }).debug('dropped too');
      log.child({ requestId: 'r' }).warn('kept');
    });
    expect(out).toEqual([]);
    expect(err).toEqual(['WARN  kept requestId=r\n']);
  });

  it('falls back to info for an unknown level', () => {
    const { out } = capture({ SLUICE_LOG_LEVEL: 'verbose', SLUICE_LOG_FORMAT: undefined }, () => {
      const log = createLogger();
      log.debug('dropped');
      log.info('kept');
    });
    expect(out).toEqual(['INFO  kept\n']);
  });
});
