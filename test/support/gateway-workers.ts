import { get } from 'node:http';

/**
 * The gateway's worker processes as a client sees them: each answers /health
 * with its pid, and the cluster hands each new connection to the next worker
 * that listens, so concurrent requests on fresh connections reach them all.
 */

function healthPid(gatewayUrl: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(`${gatewayUrl.replace(/\/graphql$/, '')}/health`, { agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (chunk: string) => (body += chunk))
        .on('end', () => resolve(Number(JSON.parse(body).pid)));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s'))).on('error', () => resolve(-1));
  });
}

/** The pids answering 20 concurrent /health requests on fresh connections. */
export async function gatewayWorkerPids(gatewayUrl: string): Promise<Set<number>> {
  const pids = new Set(await Promise.all(Array.from({ length: 20 }, () => healthPid(gatewayUrl))));
  pids.delete(-1);
  return pids;
}

/**
 * The pids once `count` workers answer, `without` not among them. The stack is
 * healthy once one worker listens (others may still be starting), and a dead
 * worker's replacement takes a while to start.
 */
export async function gatewayWorkersAnswering(gatewayUrl: string, count: number, options: { without?: number; timeoutMs?: number } = {}): Promise<Set<number>> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let pids = new Set<number>();
  while (Date.now() < deadline) {
    pids = await gatewayWorkerPids(gatewayUrl);
    if (pids.size >= count && (options.without === undefined || !pids.has(options.without))) return pids;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const without = options.without === undefined ? '' : ` without ${options.without}`;
  throw new Error(`expected ${count} gateway workers answering${without} within ${options.timeoutMs ?? 60_000} ms, but got ${[...pids].join(', ') || 'none'}`);
}
