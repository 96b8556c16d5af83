/**
 * `npm start` with several gpu-servers (SLUICE_GPU_SERVERS, issue 8): the
 * launcher starts them on consecutive port blocks and the inference router
 * spreads work over all of them.
 */
import { bearer, gql, uniqueEmail } from './support/graphql';
import { gpuServerHttpHeaders } from '../scripts/stack';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
const admin = uniqueEmail('gpu-admin');

beforeAll(async () => {
  stack = await startTestStack({ SLUICE_GPU_SERVERS: '2', AUTH_ADMIN_EMAILS: admin });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

it('runs two gpu-servers behind the router, both serving, both used', async () => {
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Ops") { token } }', { e: admin });
  const token = signUp.data!.signUp.token as string;
  const query = '{ model(id: "sluice-embed") { ready endpoints { address ready state } } }';
  let endpoints: Array<{ address: string; ready: boolean }> = [];
  // The router polls its endpoints; wait (bounded) until both have been seen ready.
  for (let attempt = 0; attempt < 100 && endpoints.filter((e) => e.ready).length < 2; attempt++) {
    const res = await gql(stack.gatewayUrl, query, {}, bearer(token));
    expect(res.errors).toBeUndefined();
    endpoints = res.data!.model.endpoints;
    if (endpoints.filter((e) => e.ready).length < 2) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(endpoints.map((e) => e.address).sort()).toEqual([`127.0.0.1:${stack.ports.gpuGrpc}`, `127.0.0.1:${stack.ports.gpuGrpc + 10}`].sort());
  expect(endpoints.every((e) => e.ready)).toBe(true);

  const texts = Array.from({ length: 64 }, (_, i) => `text ${i}`);
  const embeds = await Promise.all(Array.from({ length: 40 }, (_, i) => gql(stack.gatewayUrl, 'query($t: [String!]!) { embed(texts: $t) { index } }', { t: texts.slice(i % 8) }, bearer(token))));
  expect(embeds.every((r) => !r.errors)).toBe(true);
  const stats = await Promise.all(
    [stack.ports.gpuHttp, stack.ports.gpuHttp + 10].map(async (port) => {
      const body = (await (await fetch(`http://127.0.0.1:${port}/v2/models/sluice-embed/stats`, { headers: gpuServerHttpHeaders(stack.env) })).json()) as {
        model_stats: Array<{ inference_count: number }>;
      };
      return Number(body.model_stats[0].inference_count);
    }),
  );
  expect(stats.every((count) => count > 0)).toBe(true);
});
