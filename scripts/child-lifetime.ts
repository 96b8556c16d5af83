import type { ChildProcess } from 'node:child_process';

/**
 * Kills `child` when this process exits, so a server never outlives the process that started it, even when that
 * process never calls its stop() (a test whose beforeAll timed out while the stack was still starting, an
 * interrupted benchmark). SIGKILL: an 'exit' handler cannot wait for a graceful stop.
 */
export function killWithParent(child: ChildProcess): ChildProcess {
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  return child;
}
