/**
 * Two gateway workers while auth is down (issue 21): a session checked by one
 * worker is known to the other (gateway/auth/credentials/shared-answers.ts),
 * so a caller whose new connection reaches the worker that never saw it is
 * still answered from auth's last answer instead of refused with 503.
 */
import { request } from 'node:http';
import { gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

const CACHE_MS = 1_000;

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    GATEWAY_WORKERS: '2',
    GATEWAY_RESPONSE_CACHE: 'false',
    GATEWAY_CREDENTIALS_CACHE_MS: String(CACHE_MS),
    GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS: '600000',
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `{ models { id } }` on a connection of its own: the cluster hands each new connection to the next worker. */
function modelsOnNewConnection(token: string): Promise<{ status: number; body: { data?: { models?: unknown[] } | null } }> {
  return new Promise((resolve, reject) => {
    const req = request(stack.gatewayUrl, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ query: '{ models { id } }' }));
  });
}

it('answers a session checked by one worker at every worker while auth is down', async () => {
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "W") { token } }', { e: uniqueEmail('workers') });
  const token = signUp.data!.signUp.token as string;
  // One request, one connection, one worker: the only check of this session while auth is up.
  expect((await modelsOnNewConnection(token)).status).toBe(200);

  await stack.kill('auth');
  await sleep(CACHE_MS + 100);
  const answers = [];
  for (let i = 0; i < 6; i++) answers.push(await modelsOnNewConnection(token));
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
  for (const answer of answers) expect(answer.body.data?.models?.length).toBeGreaterThan(0);
}, 120_000);
