import path from 'node:path';
import { envPort, envString } from '../lib/config';
import { type ServiceName, type Stack, stackPorts, startStack } from './stack';
import { ensureWebAppBuilt } from './web-app-build';

/**
 * `npm start`: the whole stack on this machine with no other setup. Every
 * service's lines are prefixed with its name; Ctrl-C stops everything; if one
 * service dies, the rest are stopped and the exit code says so.
 */
const COLORS = [36, 33, 35, 32, 34, 31, 90];
const names: string[] = [];
const useColor = process.stdout.isTTY;

function print(service: string, line: string): void {
  if (!names.includes(service)) names.push(service);
  const label = `[${service}]`.padEnd(13);
  const color = COLORS[names.indexOf(service) % COLORS.length];
  process.stdout.write(`${useColor ? `\x1b[${color}m${label}\x1b[0m` : label} ${line}\n`);
}

/** The rate-limit plans of `npm start` unless GATEWAY_RATE_LIMITS says otherwise (see the README). */
const NPM_START_RATE_LIMITS = 'default:rpm=1200,tpm=300000; admin:rpm=unlimited,tpm=unlimited; anonymous:rpm=300,ip-rpm=1200';

async function main(): Promise<void> {
  const ports = await stackPorts(envPort);
  let stack: Stack | undefined;
  let stopping = false;
  const webBuild = new AbortController();
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    webBuild.abort();
    print('stack', 'stopping every service…');
    await stack?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  // The web app builds (when its sources changed) while the services start: it is optional to the
  // stack, so a failed build is reported and GraphQL still serves; stopping the stack stops the build.
  const webApp = ensureWebAppBuilt((line) => print('web', line), webBuild.signal).then(
    () => true,
    (error: unknown) => {
      if (!webBuild.signal.aborted) print('web', `ERROR the web app could not be built, so /app/ says so: ${(error as Error).message}`);
      return false;
    },
  );
  stack = await startStack({
    ports,
    // Limits on by default for a stack people run: generous for one person, firm against a runaway client.
    env: process.env.GATEWAY_RATE_LIMITS === undefined ? { GATEWAY_RATE_LIMITS: NPM_START_RATE_LIMITS } : {},
    redisUrl: envString('REDIS_URL'),
    dataDir: path.resolve(envString('SLUICE_DATA_DIR', path.join(__dirname, '..', '.data'))),
    onLine: print,
    onUnexpectedExit: (service: ServiceName, code, signal) => {
      print('stack', `ERROR ${service} exited unexpectedly (${signal ?? `code ${code}`}); stopping the stack. Its last lines are above.`);
      void stop(1);
    },
  });
  print('stack', `Redis: ${stack.redisUrl}${stack.mode === 'in-process' ? ' (in-memory, nothing is kept)' : ''}`);
  print('stack', `Sluice is ready. Apollo Sandbox: http://localhost:${ports.gateway}/  ·  GraphQL: http://localhost:${ports.gateway}/graphql`);
  if (await webApp) print('stack', `Web app: http://localhost:${ports.gateway}/app/`);
}

main().catch((error: unknown) => {
  print('stack', `ERROR ${(error as Error).message}`);
  process.exit(1);
});
