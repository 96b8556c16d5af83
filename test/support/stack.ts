import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/free-port';
import { type Stack, type StackOptions, type StackPorts, stackPorts, startStack } from '../../scripts/stack';

/**
 * The whole stack on free loopback ports with its own redis-server (or
 * `REDIS_URL` when the environment sets one), for end-to-end tests. Service
 * output is kept and printed only when starting fails, or with SLUICE_TEST_LOGS=1.
 */
export interface TestStack extends Stack {
  logs: string[];
}

/** A free loopback port for every service of the stack. */
export function freeStackPorts(): Promise<StackPorts> {
  return stackPorts(() => freePort());
}

export async function startTestStack(env: Record<string, string> = {}, options: Pick<StackOptions, 'nodeArgs'> = {}): Promise<TestStack> {
  const ports = await freeStackPorts();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sluice-test-'));
  const logs: string[] = [];
  const verbose = process.env.SLUICE_TEST_LOGS === '1';
  try {
    const stack = await startStack({
      ports,
      redisUrl: process.env.REDIS_URL || undefined,
      dataDir,
      host: '127.0.0.1',
      env: { SLUICE_LOG_LEVEL: 'warn', ...env },
      nodeArgs: options.nodeArgs,
      onLine: (service, line) => {
        logs.push(`[${service}] ${line}`);
        if (verbose) process.stdout.write(`[${service}] ${line}\n`);
      },
    });
    return {
      ...stack,
      logs,
      stop: async () => {
        await stack.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    process.stderr.write(`stack failed to start; its output:\n${logs.join('\n')}\n`);
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
