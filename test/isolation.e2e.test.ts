/**
 * Isolation (issue 5): every type that holds user data is invisible to other
 * users, through the gateway and — defense in depth — at each subgraph
 * directly, with a validly signed identity of another user asking for the
 * first user's objects by id. A guessed or enumerated id gets the same
 * NOT_FOUND (or null) as an id that does not exist: no hint that it does.
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import { IDENTITY_HEADER, IdentitySigner } from '../lib/identity';
import { FORWARDS_IDENTITY_TO } from '../lib/service-calls';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
let signer: IdentitySigner;

beforeAll(async () => {
  stack = await startTestStack();
  signer = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY));
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function signUp(name: string) {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!, $n: String!) { signUp(email: $e, password: "correct horse battery", name: $n) { token user { id } } }', {
    e: uniqueEmail(name),
    n: name,
  });
  expect(res.errors).toBeUndefined();
  return { token: res.data!.signUp.token as string, id: res.data!.signUp.user.id as string };
}

/** A subgraph asked directly, as the gateway would, with `as`'s signed identity. */
function asUser(port: number, as: string, query: string, variables: Record<string, unknown> = {}) {
  const identity = signer.sign({ sub: as, scopes: ['inference:invoke', 'knowledge:read', 'knowledge:write', 'billing:read'] }, Object.keys(FORWARDS_IDENTITY_TO));
  return gql(`http://127.0.0.1:${port}/graphql`, query, variables, { [IDENTITY_HEADER]: identity });
}

const ENTITIES = 'query($r: [_Any!]!) { _entities(representations: $r) { __typename ';

describe("one user's data, asked for by another", () => {
  let ada: { token: string; id: string };
  let bob: { token: string; id: string };
  let adaDocument: string;

  beforeAll(async () => {
    [ada, bob] = await Promise.all([signUp('ada'), signUp('bob')]);
    const added = await gql(stack.gatewayUrl, 'mutation { addDocument(title: "Ada only", content: "private notes") { id } }', {}, bearer(ada.token));
    adaDocument = added.data!.addDocument.id;
    // Searchable once ingested: wait for READY (bounded by the test timeout).
    for (;;) {
      const res = await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { status } }', { d: adaDocument }, bearer(ada.token));
      if (res.data!.document.status !== 'INGESTING') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('through the gateway, each sees only their own documents and balance', async () => {
    const res = await gql(stack.gatewayUrl, '{ me { id documents { id title } balance { total } } documents { id } }', {}, bearer(bob.token));
    expect(res.errors).toBeUndefined();
    expect(res.data!.me.id).toBe(bob.id);
    expect(res.data!.me.documents).toEqual([]);
    expect(res.data!.documents).toEqual([]);
  });

  it('auth: User (email, name, API keys) resolves only for its owner; for anyone else it is null like an unknown id', async () => {
    const fields = ENTITIES + '... on User { id email name apiKeys { id } } } }';
    const own = await asUser(stack.ports.auth, ada.id, fields, { r: [{ __typename: 'User', id: ada.id }] });
    expect(own.data!._entities[0]).toMatchObject({ id: ada.id, email: expect.any(String) });
    const other = await asUser(stack.ports.auth, bob.id, fields, {
      r: [
        { __typename: 'User', id: ada.id },
        { __typename: 'User', id: randomUUID() },
      ],
    });
    expect(other.data!._entities).toEqual([null, null]);
  });

  it('billing: User.balance of another user is NOT_FOUND, worded as for an unknown user', async () => {
    const query = ENTITIES + '... on User { balance { total } } } }';
    const other = await asUser(stack.ports.billing, bob.id, query, { r: [{ __typename: 'User', id: ada.id }] });
    const unknown = await asUser(stack.ports.billing, bob.id, query, { r: [{ __typename: 'User', id: 'u-does-not-exist' }] });
    for (const res of [other, unknown]) expect(res.errors?.[0].extensions?.code).toBe('NOT_FOUND');
    expect(other.errors![0].message.replace(ada.id, 'X')).toBe(unknown.errors![0].message.replace('u-does-not-exist', 'X'));
  });

  it('billing: usage, invoices and spend limits of another user are NOT_FOUND', async () => {
    for (const field of ['usage(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { key amount }', 'invoices { month total }', 'spendLimits { apiKeyId }']) {
      const res = await asUser(stack.ports.billing, bob.id, `${ENTITIES}... on User { ${field} } } }`, { r: [{ __typename: 'User', id: ada.id }] });
      expect(res.errors?.[0].extensions?.code).toBe('NOT_FOUND');
      // The field is nullable (the schema degrades), so only it is null: nothing of the other user's data is returned.
      const entity = res.data?._entities?.[0] ?? null;
      if (entity !== null) expect(Object.entries(entity).filter(([key]) => key !== '__typename')).toEqual([[field.split(/[ (]/)[0], null]]);
    }
  });

  it("knowledge: another user's search finds none of the first user's chunks, and document(id) is null", async () => {
    const search = await asUser(stack.ports.knowledge, bob.id, '{ search(query: "private notes", k: 5) { document { id } } }');
    expect(search.errors).toBeUndefined();
    expect(search.data!.search).toEqual([]);
    const own = await asUser(stack.ports.knowledge, ada.id, '{ search(query: "private notes", k: 5) { document { id } } }');
    expect(own.data!.search.map((h: { document: { id: string } }) => h.document.id)).toContain(adaDocument);
    const doc = await asUser(stack.ports.knowledge, bob.id, 'query($d: ID!) { document(id: $d) { id } }', { d: adaDocument });
    expect(doc.data!.document).toBeNull();
  });

  it('knowledge: User.documents and Document of another user are NOT_FOUND, worded as for an unknown id', async () => {
    const documents = await asUser(stack.ports.knowledge, bob.id, ENTITIES + '... on User { documents { id } } } }', { r: [{ __typename: 'User', id: ada.id }] });
    expect(documents.errors?.[0].extensions?.code).toBe('NOT_FOUND');
    const query = ENTITIES + '... on Document { id title content } } }';
    const theirs = await asUser(stack.ports.knowledge, bob.id, query, { r: [{ __typename: 'Document', id: adaDocument }] });
    const guessed = await asUser(stack.ports.knowledge, bob.id, query, { r: [{ __typename: 'Document', id: randomUUID() }] });
    for (const res of [theirs, guessed]) {
      expect(res.errors?.[0].extensions?.code).toBe('NOT_FOUND');
      expect(JSON.stringify(res.data)).not.toContain('private notes');
    }
    expect(theirs.errors![0].message.replace(adaDocument, 'X')).toBe(guessed.errors![0].message.replace(/"[^"]+"/, '"X"'));
    const own = await asUser(stack.ports.knowledge, ada.id, query, { r: [{ __typename: 'Document', id: adaDocument }] });
    expect(own.data!._entities[0]).toMatchObject({ id: adaDocument, content: 'private notes' });
  });
});
