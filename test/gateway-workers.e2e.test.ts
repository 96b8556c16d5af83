/**
 * The gateway runs one process per core by default (issue 7): workers share
 * the port, each answers requests, a dead worker is replaced, and the stack
 * still stops cleanly.
 */
import { gql } from './support/graphql';
import { gatewayWorkersAnswering } from './support/gateway-workers';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ GATEWAY_WORKERS: '2' });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

it('serves from two worker processes on one port, and replaces a worker that dies', async () => {
  // The gateway is healthy once one worker listens; the other may still be starting.
  const pids = await gatewayWorkersAnswering(stack.gatewayUrl, 2);
  const res = await gql(stack.gatewayUrl, '{ models { id } }');
  expect(res.errors).toBeUndefined();

  const [victim] = pids;
  process.kill(victim, 'SIGKILL');
  // A new worker takes the dead one's place: two answer again, the dead one not among them. (A connection
  // the cluster handed to the worker as it died is lost: those requests time out, as a client's would.)
  await gatewayWorkersAnswering(stack.gatewayUrl, 2, { without: victim });
  expect((await gql(stack.gatewayUrl, '{ models { id } }')).errors).toBeUndefined();
}, 120_000);
