import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PORT_VARIABLES } from '../lib/config';
import { freePort } from '../scripts/free-port';
import { gql } from './support/graphql';

/**
 * `npm start`'s launcher as a user runs it: every line prefixed with its
 * service, the Sandbox URL printed when ready, and the whole stack stopped
 * with a clear message when one service dies.
 */
const ROOT = path.resolve(__dirname, '..');

function children(pid: number): { pid: number; command: string }[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [, childPid, command] = /^\s*(\d+)\s+(.*)$/.exec(line) ?? [];
        return { pid: Number(childPid), command };
      });
  } catch {
    return []; // ps exits 1 when there are none
  }
}

it('starts everything, prints the Sandbox URL, and stops the rest with a clear message when one service dies', async () => {
  const env: Record<string, string> = { SLUICE_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sluice-start-')), HOST: '127.0.0.1' };
  for (const variable of Object.values(PORT_VARIABLES)) env[variable] = String(await freePort());
  const launcher: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, REDIS_URL: process.env.REDIS_URL ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  launcher.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  launcher.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 600 && !output.includes('Sluice is ready'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(output).toContain(`Apollo Sandbox: http://localhost:${env.GATEWAY_PORT}/`);
    for (const service of ['gpu-server', 'auth', 'billing', 'knowledge', 'inference', 'gateway']) {
      expect(output).toMatch(new RegExp(`^\\[${service}\\]\\s+INFO  .*ready`, 'm'));
    }
    const res = await gql(`http://127.0.0.1:${env.GATEWAY_PORT}/graphql`, '{ models { id ready } }');
    expect(res.data!.models).toContainEqual({ id: 'sluice-embed', ready: true });

    // The launcher's own helpers (tsx's esbuild service) are not services; they go when it goes.
    const services = children(launcher.pid!).filter((c) => /main\.ts|redis-server/.test(c.command));
    expect(services).toHaveLength(7);
    const billing = services.find((c) => c.command.includes('subgraphs/billing/main.ts'));
    expect(billing).toBeDefined();
    process.kill(billing!.pid, 'SIGKILL');

    expect(await exited).toBe(1);
    expect(output).toContain('billing exited unexpectedly (SIGKILL); stopping the stack');
    for (const child of services) {
      expect({ command: child.command, alive: isAlive(child.pid) }).toEqual({ command: child.command, alive: false });
    }
  } finally {
    launcher.kill('SIGKILL');
  }
}, 120_000);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
