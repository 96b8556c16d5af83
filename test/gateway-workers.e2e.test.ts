/**
 * The gateway runs one process per core by default (issue 7): workers share
 * the port, each answers requests, a dead worker is replaced, and the stack
 * still stops cleanly.
 */
import { get } from 'node:http';
import { gql } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ GATEWAY_WORKERS: '2' });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

/** /health on a new connection each time (no keep-alive), so connections are spread over the workers. */
function healthPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(`${stack.gatewayUrl.replace(/\/graphql$/, '')}/health`, { agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (chunk: string) => (body += chunk))
        .on('end', () => resolve(JSON.parse(body).pid as number));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s'))).on('error', reject);
  });
}

/** The pids answering 20 concurrent /health requests (the cluster hands connections out round-robin to free workers). */
async function pidsAnswering(): Promise<Set<number>> {
  return new Set(await Promise.all(Array.from({ length: 20 }, () => healthPid().catch(() => -1))));
}

/** The gateway is healthy once one worker listens; others may still be starting: wait (bounded) until two answer. */
async function twoWorkers(): Promise<Set<number>> {
  let pids = new Set<number>();
  for (let attempt = 0; attempt < 150; attempt++) {
    pids = await pidsAnswering();
    pids.delete(-1);
    if (pids.size >= 2) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return pids;
}

it('serves from two worker processes on one port, and replaces a worker that dies', async () => {
  const pids = await twoWorkers();
  expect(pids.size).toBe(2);
  const res = await gql(stack.gatewayUrl, '{ models { id } }');
  expect(res.errors).toBeUndefined();

  const [victim] = pids;
  process.kill(victim, 'SIGKILL');
  // A new worker takes the dead one's place: two answer again, the dead one not among them. (A connection
  // the cluster handed to the worker as it died is lost: those requests time out, as a client's would.)
  const after = await twoWorkers();
  expect(after.size).toBe(2);
  expect(after.has(victim)).toBe(false);
  expect((await gql(stack.gatewayUrl, '{ models { id } }')).errors).toBeUndefined();
}, 120_000);
