/**
 * Two gateway workers while auth is down (issue 21): a session checked by one
 * worker is known to the other (gateway/auth/credentials/shared-answers.ts),
 * so a caller whose new connection reaches the worker that never saw it is
 * still answered from auth's last answer instead of refused with 503 — also
 * by a worker that started after auth went down, which could neither ask auth
 * nor fetch its keys.
 */
import { request } from 'node:http';
import { gatewayWorkersAnswering } from './support/gateway-workers';
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

interface Answer {
  status: number;
  body: { data?: { models?: unknown[] } | null; errors?: { message: string; extensions?: { code?: string } }[] };
}

/** `{ models { id } }` on a connection of its own: the cluster hands each new connection to the next worker. */
function modelsOnNewConnection(token: string): Promise<Answer> {
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

/** Six requests on new connections, three per worker: each answered with the models, or the failure says which error. */
async function expectEveryWorkerAnswers(token: string): Promise<void> {
  const answers: Answer[] = [];
  for (let i = 0; i < 6; i++) answers.push(await modelsOnNewConnection(token));
  expect(answers.map((a) => [a.status, a.body.errors?.map((e) => `${e.extensions?.code}: ${e.message}`) ?? []])).toEqual(Array(6).fill([200, []]));
  for (const answer of answers) expect(answer.body.data?.models?.length).toBeGreaterThan(0);
}

let token: string;

it('answers a session checked by one worker at every worker while auth is down', async () => {
  // Both workers serving before the check, so it is the other worker's answer that the second one relies on.
  await gatewayWorkersAnswering(stack.gatewayUrl, 2);
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "W") { token } }', { e: uniqueEmail('workers') });
  token = signUp.data!.signUp.token as string;
  // One request, one connection, one worker: the only check of this session while auth is up.
  expect((await modelsOnNewConnection(token)).status).toBe(200);

  await stack.kill('auth');
  await sleep(CACHE_MS + 100);
  await expectEveryWorkerAnswers(token);
}, 120_000);

it('answers it also at a worker that started while auth was down', async () => {
  // Auth is still down (the test above killed it): the replacement can fetch neither the session's answer nor auth's keys.
  const [victim] = await gatewayWorkersAnswering(stack.gatewayUrl, 2);
  process.kill(victim, 'SIGKILL');
  await gatewayWorkersAnswering(stack.gatewayUrl, 2, { without: victim });
  await expectEveryWorkerAnswers(token);
}, 120_000);
