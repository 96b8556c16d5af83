import type { ChildProcess } from 'node:child_process';

/** The children still running; one 'exit' listener for all of them (a replicated stack starts dozens). */
const living = new Set<ChildProcess>();
let listening = false;

/**
 * Kills `child` when this process exits, so a server never outlives the process that started it, even when that
 * process never calls its stop() (a test whose beforeAll timed out while the stack was still starting, an
 * interrupted benchmark). SIGKILL: an 'exit' handler cannot wait for a graceful stop.
 */
export function killWithParent(child: ChildProcess): ChildProcess {
  if (!listening) {
    listening = true;
    process.once('exit', () => {
      for (const running of living) running.kill('SIGKILL');
    });
  }
  living.add(child);
  child.once('exit', () => living.delete(child));
  return child;
}
