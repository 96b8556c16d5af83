import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../scripts/free-port';
import { IdentitySigner } from '../lib/identity';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

/**
 * The whole stack, each service its own process on a free port, with its own
 * redis-server, exercised through the gateway as a client would.
 */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const url = () => stack.gatewayUrl;

async function signUp(name = 'Ada') {
  const email = uniqueEmail();
  const res = await gql(url(), 'mutation($e: String!, $p: String!, $n: String!) { signUp(email: $e, password: $p, name: $n) { token user { id email name } } }', {
    e: email,
    p: 'correct horse battery',
    n: name,
  });
  expect(res.errors).toBeUndefined();
  return { email, token: res.data!.signUp.token as string, id: res.data!.signUp.user.id as string };
}

describe('through the gateway', () => {
  it('answers one query from three subgraphs: auth, billing and knowledge, plus inference and billing for models', async () => {
    const user = await signUp();
    const added = await gql(url(), 'mutation { addDocument(title: "Notes", content: "Sluice batches GPU work.") { id title owner { email } } }', {}, bearer(user.token));
    expect(added.errors).toBeUndefined();
    expect(added.data!.addDocument).toMatchObject({ title: 'Notes', owner: { email: user.email } });

    const res = await gql(
      url(),
      '{ me { email balance { total granted toppedUp currency } documents { title } } models { id ready kind maxBatchSize pricing { output inputCacheMiss } } }',
      {},
      bearer(user.token),
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.me).toEqual({
      email: user.email,
      balance: { total: 5_000_000, granted: 5_000_000, toppedUp: 0, currency: 'USD' },
      documents: [{ title: 'Notes' }],
    });
    const embed = res.data!.models.find((m: { id: string }) => m.id === 'sluice-embed');
    expect(embed).toMatchObject({ ready: true, kind: 'EMBEDDING', pricing: { output: 0, inputCacheMiss: 20000 } });
    expect(embed.maxBatchSize).toBeGreaterThan(1);
  });

  it('logs in with the password given at sign-up, and refuses a wrong one without saying which part was wrong', async () => {
    const user = await signUp();
    const ok = await gql(url(), 'mutation($e: String!) { login(email: $e, password: "correct horse battery") { token user { id } } }', { e: user.email });
    expect(ok.data!.login.user.id).toBe(user.id);
    const me = await gql(url(), '{ me { id } }', {}, bearer(ok.data!.login.token));
    expect(me.data!.me.id).toBe(user.id);

    const bad = await gql(url(), 'mutation($e: String!) { login(email: $e, password: "wrong password!") { token } }', { e: user.email });
    expect(bad.errors![0]).toMatchObject({ message: 'login failed: the e-mail or the password is incorrect', extensions: { code: 'UNAUTHENTICATED' } });
  });

  it('refuses a second account for the same e-mail with CONFLICT', async () => {
    const user = await signUp();
    const again = await gql(url(), 'mutation($e: String!) { signUp(email: $e, password: "another password", name: "B") { token } }', { e: user.email });
    expect(again.errors![0].extensions!.code).toBe('CONFLICT');
  });

  it('names the field, the limit and the value for bad sign-up input', async () => {
    const res = await gql(url(), 'mutation { signUp(email: "x@example.test", password: "short", name: "A") { token } }');
    expect(res.errors![0]).toMatchObject({
      message: 'signUp expects "password" to be 8 to 1024 characters long, but got 5',
      extensions: { code: 'BAD_USER_INPUT', field: 'password' },
    });
  });

  it('answers me: null to an anonymous caller, and refuses anonymous writes with UNAUTHENTICATED', async () => {
    expect((await gql(url(), '{ me { id } }')).data).toEqual({ me: null });
    const res = await gql(url(), 'mutation { addDocument(title: "t", content: "c") { id } }');
    expect(res.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('rejects a query that does not parse with GRAPHQL_PARSE_FAILED', async () => {
    const res = await gql(url(), '{ models { id ');
    expect(res.status).toBe(400);
    expect(res.errors![0].extensions!.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('rejects an unknown field with GRAPHQL_VALIDATION_FAILED naming it', async () => {
    const res = await gql(url(), '{ models { id gpuTemperature } }');
    expect(res.status).toBe(400);
    expect(res.errors![0]).toMatchObject({
      message: expect.stringContaining('Cannot query field "gpuTemperature" on type "Model"'),
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
    });
  });

  it('rejects a wrong argument type with GRAPHQL_VALIDATION_FAILED', async () => {
    const res = await gql(url(), '{ documents(first: "ten") { id } }');
    expect(res.errors![0].extensions!.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('refuses an invalid bearer token with 401 instead of treating the caller as anonymous', async () => {
    const res = await gql(url(), '{ me { id } }', {}, bearer('not-a-jwt'));
    expect(res.status).toBe(401);
    expect(res.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('embeds 32 texts requested together with one ModelInfer call, each vector in its place', async () => {
    const user = await signUp();
    const texts = Array.from({ length: 32 }, (_, i) => `document number ${i} about topic ${i % 4}`);
    const before = await executionCount('sluice-embed');
    const fields = texts.map((_, i) => `e${i}: embed(texts: [$t${i}]) { index dimensions vector }`).join('\n');
    const defs = texts.map((_, i) => `$t${i}: String!`).join(', ');
    const variables = Object.fromEntries(texts.map((t, i) => [`t${i}`, t]));
    const res = await gql(url(), `query(${defs}) { ${fields} }`, variables, bearer(user.token));
    expect(res.errors).toBeUndefined();
    const after = await executionCount('sluice-embed');
    expect(after.executions - before.executions).toBe(1);
    expect(after.inferences - before.inferences).toBe(32);

    // Each text embedded again in another batch gets (up to float rounding) the
    // same vector, and a clearly different one from its neighbours: results came back in order.
    const single = await gql(url(), 'query($t: [String!]!) { embed(texts: $t) { index vector } }', { t: [texts[5], texts[17]] }, bearer(user.token));
    const cos = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * b[i], 0);
    expect(cos(single.data!.embed[0].vector, res.data!.e5[0].vector)).toBeGreaterThan(0.9999);
    expect(cos(single.data!.embed[1].vector, res.data!.e17[0].vector)).toBeGreaterThan(0.9999);
    expect(cos(single.data!.embed[0].vector, res.data!.e17[0].vector)).toBeLessThan(0.99);
    expect(cos(res.data!.e4[0].vector, res.data!.e5[0].vector)).toBeLessThan(0.99);
  });

  it('splits a request larger than max_batch_size into batches of at most max_batch_size, one ModelInfer each', async () => {
    const user = await signUp();
    const models = await gql(url(), '{ model(id: "sluice-embed") { maxBatchSize } }');
    const max = models.data!.model.maxBatchSize as number;
    const texts = Array.from({ length: max + 5 }, (_, i) => `text ${i}`);
    const before = await executionCount('sluice-embed');
    const res = await gql(url(), 'query($t: [String!]!) { embed(texts: $t) { index } }', { t: texts }, bearer(user.token));
    expect(res.data!.embed.map((e: { index: number }) => e.index)).toEqual(texts.map((_, i) => i));
    const after = await executionCount('sluice-embed');
    expect(after.executions - before.executions).toBe(2);
    expect(after.inferences - before.inferences).toBe(max + 5);
  });

  it('answers an unknown embedding model with MODEL_NOT_FOUND', async () => {
    const user = await signUp();
    const res = await gql(url(), '{ embed(texts: ["x"], model: "no-such-model") { index } }', {}, bearer(user.token));
    expect(res.errors![0].extensions).toMatchObject({ code: 'MODEL_NOT_FOUND', model: 'no-such-model' });
  });

  it('serves Apollo Sandbox on GET / and GET /graphql, and health probes', async () => {
    for (const path of ['/', '/graphql']) {
      const res = await fetch(`http://127.0.0.1:${stack.ports.gateway}${path}`, { headers: { accept: 'text/html' } });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('embeddable-sandbox');
    }
    expect((await fetch(`http://127.0.0.1:${stack.ports.gateway}/health`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${stack.ports.gateway}/ready`)).status).toBe(200);
    const inference = await (await fetch(`http://127.0.0.1:${stack.ports.inference}/ready`)).json();
    expect(inference).toMatchObject({ checks: { redis: true, gpu: true } });
  });
});

describe('subgraphs called directly', () => {
  const subgraphs = () => ({ auth: stack.ports.auth, billing: stack.ports.billing, knowledge: stack.ports.knowledge, inference: stack.ports.inference });

  it('refuse a request without an identity header, every one of them', async () => {
    for (const [name, port] of Object.entries(subgraphs())) {
      const res = await gql(`http://127.0.0.1:${port}/graphql`, '{ __typename }');
      expect({ name, status: res.status, code: res.errors?.[0].extensions?.code }).toEqual({ name, status: 401, code: 'UNAUTHENTICATED' });
      expect(res.errors![0].message).toContain('requests must come through the gateway');
    }
  });

  it("refuse an identity signed with a key that is not the gateway's", async () => {
    const forger = new IdentitySigner(createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })));
    const header = forger.sign({ sub: 'someone', scopes: ['admin'] }, Object.keys(subgraphs()));
    for (const [name, port] of Object.entries(subgraphs())) {
      const res = await gql(`http://127.0.0.1:${port}/graphql`, '{ __typename }', {}, { 'x-sluice-identity': header });
      expect({ name, status: res.status, message: res.errors?.[0].message }).toEqual({ name, status: 401, message: 'x-sluice-identity header has an invalid signature' });
    }
  });

  it('accept the gateway-signed identity (the refusals above are about the signature, not the route)', async () => {
    const signer = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY));
    const res = await gql(`http://127.0.0.1:${stack.ports.billing}/graphql`, '{ __typename }', {}, { 'x-sluice-identity': signer.sign({ sub: null, scopes: [] }, ['billing']) });
    expect(res).toMatchObject({ status: 200, data: { __typename: 'Query' } });
  });
});

describe('gateway process', () => {
  const ROOT = path.resolve(__dirname, '..');
  const tsx = (args: string[], env: Record<string, string | undefined> = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });

  it('serves a ready supergraph given with --supergraph, at the subgraph URLs written in it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'supergraph-'));
    const config = readFileSync(path.join(ROOT, 'supergraph.yaml'), 'utf8')
      .replace(/\.\/subgraphs/g, path.join(ROOT, 'subgraphs'))
      .replace(/http:\/\/localhost:(400\d)/g, (_m, port: string) => {
        const name = ({ '4001': 'auth', '4002': 'billing', '4003': 'knowledge', '4004': 'inference' } as const)[port as '4001'];
        return `http://127.0.0.1:${stack.ports[name]}`;
      });
    writeFileSync(path.join(dir, 'supergraph.yaml'), config);
    const composed = tsx(['gateway/compose-cli.ts', path.join(dir, 'supergraph.yaml'), path.join(dir, 'supergraph.graphql')]);
    expect(composed.status).toBe(0);
    expect(readFileSync(path.join(dir, 'supergraph.graphql'), 'utf8')).toContain(`url: "http://127.0.0.1:${stack.ports.billing}/graphql"`);

    const port = await freePort();
    const overrides = Object.fromEntries(
      Object.keys(stack.env)
        .filter((k) => k.startsWith('SLUICE_SUBGRAPH_'))
        .map((k) => [k, undefined]),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--supergraph', path.join(dir, 'supergraph.graphql')], {
      cwd: ROOT,
      env: { ...process.env, ...stack.env, ...overrides, GATEWAY_PORT: String(port), SLUICE_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    try {
      const gateway = `http://127.0.0.1:${port}`;
      for (
        let i = 0;
        i < 200 &&
        !(await fetch(`${gateway}/health`).then(
          (r) => r.ok,
          () => false,
        ));
        i++
      )
        await new Promise((r) => setTimeout(r, 100));
      const res = await gql(`${gateway}/graphql`, '{ models { id pricing { output } } }');
      expect(res.errors).toBeUndefined();
      expect(res.data!.models).toContainEqual({ id: 'sluice-embed', pricing: { output: 0 } });

      // SIGTERM drains and exits cleanly.
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('turns introspection and Sandbox off when configured', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...stack.env, GATEWAY_PORT: String(port), GATEWAY_INTROSPECTION: 'false', GATEWAY_SANDBOX: 'false', SLUICE_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    try {
      const gateway = `http://127.0.0.1:${port}`;
      for (
        let i = 0;
        i < 200 &&
        !(await fetch(`${gateway}/health`).then(
          (r) => r.ok,
          () => false,
        ));
        i++
      )
        await new Promise((r) => setTimeout(r, 100));
      const res = await gql(`${gateway}/graphql`, '{ __schema { queryType { name } } }');
      expect(res.errors![0].message).toContain('introspection is not allowed');
      const page = await fetch(`${gateway}/`, { headers: { accept: 'text/html' } });
      expect(await page.text()).not.toContain('embeddable-sandbox');
      expect((await gql(`${gateway}/graphql`, '{ models { id } }')).data!.models).toContainEqual({ id: 'sluice-embed' });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits non-zero on a composition error, naming the subgraphs and locations', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'badgraph-'));
    const link = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])\n';
    writeFileSync(path.join(dir, 'one.graphql'), `${link}type Query { one: Int }\ntype Model @key(fields: "id") { id: ID! size: Int }\n`);
    writeFileSync(path.join(dir, 'two.graphql'), `${link}type Query { two: Int }\ntype Model @key(fields: "id") { id: ID! size: String }\n`);
    writeFileSync(
      path.join(dir, 'supergraph.yaml'),
      'subgraphs:\n  one:\n    routing_url: http://127.0.0.1:1/graphql\n    schema: { file: ./one.graphql }\n  two:\n    routing_url: http://127.0.0.1:2/graphql\n    schema: { file: ./two.graphql }\n',
    );
    const result = tsx(['gateway/main.ts', '--config', path.join(dir, 'supergraph.yaml')], { GATEWAY_PORT: '0', SLUICE_IDENTITY_PRIVATE_KEY: stack.env.SLUICE_IDENTITY_PRIVATE_KEY });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('composition failed');
    expect(result.stderr).toMatch(/"one".*"two"|"two".*"one"/);
    expect(result.stderr).toContain('one.graphql:3');
  });
});

async function executionCount(model: string): Promise<{ executions: number; inferences: number }> {
  const client = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
  try {
    const stats = (await client.modelStatistics(model)).model_stats;
    return {
      executions: stats.reduce((sum, s) => sum + s.execution_count, 0),
      inferences: stats.reduce((sum, s) => sum + s.inference_count, 0),
    };
  } finally {
    client.close();
  }
}
