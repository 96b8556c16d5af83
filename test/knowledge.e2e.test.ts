/**
 * The knowledge base end to end (issue 6): documents ingested in the
 * background through the inference service's `embed`, searched, and answered
 * from with citations — through the gateway, over HTTP and graphql-ws, with
 * every service its own process on a real Redis and gpu-server.
 */
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { DOCUMENTS, QUESTIONS } from './fixtures/knowledge-set';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

let stack: TestStack;
let triton: TritonClient;

beforeAll(async () => {
  // A short identity lifetime, so a test can outlive it on one WebSocket.
  stack = await startTestStack({ GATEWAY_SUBSCRIPTIONS_PER_CONNECTION: '60', GATEWAY_SUBSCRIPTIONS_PER_USER: '200', GATEWAY_IDENTITY_TTL_SECONDS: '5' });
  triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
}, 180_000);

afterAll(async () => {
  triton?.close();
  await stack?.stop();
}, 60_000);

async function signUp(name = 'K'): Promise<string> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!, $n: String!) { signUp(email: $e, password: "correct horse battery", name: $n) { token } }', { e: uniqueEmail('kb'), n: name });
  return res.data!.signUp.token as string;
}

const ADD = 'mutation($t: String!, $c: String!, $g: [String!]) { addDocument(title: $t, content: $c, tags: $g) { id status createdAt } }';
const INGESTION = 'subscription($d: ID!) { ingestion(documentId: $d) { status embeddedChunks totalChunks reason document { id status chunkCount tokenCount } } }';

interface Progress {
  status: string;
  embeddedChunks: number;
  totalChunks: number;
  reason: string | null;
  document: { id: string; status: string; chunkCount: number; tokenCount: number };
}

/** Adds a document and follows its ingestion to the end; returns the id and every progress event. */
async function addAndIngest(token: string, title: string, content: string, tags: string[] = []) {
  const added = await gql(stack.gatewayUrl, ADD, { t: title, c: content, g: tags }, bearer(token));
  expect(added.errors).toBeUndefined();
  const id = added.data!.addDocument.id as string;
  const client = wsClient(stack.gatewayUrl, token);
  try {
    const events = await collect<{ ingestion: Progress }>(client, INGESTION, { d: id });
    expect(events.every((e) => !e.errors)).toBe(true);
    return { id, progress: events.map((e) => e.data!.ingestion) };
  } finally {
    await client.dispose();
  }
}

/** A long Markdown manual: `sections` sections of `paragraphs` paragraphs, each a few distinct sentences. */
function manual(sections: number, paragraphs: number): string {
  const parts = ['# Field manual'];
  for (let s = 0; s < sections; s++) {
    parts.push(`## Procedure ${s}`);
    for (let p = 0; p < paragraphs; p++) {
      parts.push(`Step ${s}.${p}: calibrate valve ${s * 31 + p} to pressure ${p * 7 + s} before opening line ${s}-${p}. Record the reading in log book ${s}, page ${p}, and sign it.`);
    }
  }
  return parts.join('\n\n');
}

async function embedStatistics() {
  const stats = (await triton.modelStatistics('sluice-embed')).model_stats[0];
  return { executions: Number(stats.execution_count), inferences: Number(stats.inference_count) };
}

describe('ingestion', () => {
  it('chunks and embeds in the background, streams progress to READY, and makes ⌈N / max_batch_size⌉ GPU calls for N chunks', async () => {
    const token = await signUp();
    const models = await gql(stack.gatewayUrl, '{ model(id: "sluice-embed") { maxBatchSize } }');
    const maxBatchSize = models.data!.model.maxBatchSize as number;
    const before = await embedStatistics();

    const { id, progress } = await addAndIngest(token, 'Field manual', manual(40, 12), ['ops']);

    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ status: 'READY', reason: null });
    const chunks = last.document.chunkCount;
    expect(chunks).toBeGreaterThan(maxBatchSize);
    expect(last).toMatchObject({ embeddedChunks: chunks, totalChunks: chunks, document: { id, status: 'READY' } });
    expect(last.document.tokenCount).toBeGreaterThan(chunks * 50);
    // Progress only moves forward, and every event before the last is still INGESTING.
    for (let i = 1; i < progress.length; i++) expect(progress[i].embeddedChunks).toBeGreaterThanOrEqual(progress[i - 1].embeddedChunks);
    expect(progress.slice(0, -1).every((p) => p.status === 'INGESTING')).toBe(true);

    const after = await embedStatistics();
    expect(after.inferences - before.inferences).toBe(chunks);
    expect(after.executions - before.executions).toBe(Math.ceil(chunks / maxBatchSize));

    const page = await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { chunks(first: 3, after: 0) { index heading tokenCount text document { id } } } }', { d: id }, bearer(token));
    expect(page.errors).toBeUndefined();
    const listed = page.data!.document.chunks as Array<{ index: number; heading: string; tokenCount: number; text: string; document: { id: string } }>;
    expect(listed.map((c) => c.index)).toEqual([1, 2, 3]);
    for (const chunk of listed) {
      expect(chunk.heading).toMatch(/^Field manual > Procedure \d+$/);
      expect(chunk.tokenCount).toBeLessThanOrEqual(160);
      expect(chunk.document.id).toBe(id);
    }
  });

  it('refuses a document over the size limit, and an empty title, with what was expected', async () => {
    const token = await signUp();
    const big = await gql(stack.gatewayUrl, ADD, { t: 'Too big', c: 'x'.repeat(512 * 1024 + 1) }, bearer(token));
    expect(big.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'content', limit: 512 * 1024, got: 512 * 1024 + 1 } });
    expect(big.errors?.[0].message).toMatch(/at most 524288 bytes, but got 524289 bytes/);
    const untitled = await gql(stack.gatewayUrl, ADD, { t: '  ', c: 'text' }, bearer(token));
    expect(untitled.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'title' } });
    const docs = await gql(stack.gatewayUrl, '{ documents { id } }', {}, bearer(token));
    expect(docs.data!.documents).toEqual([]);
  });
});

describe('search', () => {
  let owner: string;
  let orchids: string;

  beforeAll(async () => {
    owner = await signUp();
    const ids = await Promise.all(DOCUMENTS.map((doc) => addAndIngest(owner, doc.title, doc.content, doc.tags)));
    for (const { progress } of ids) expect(progress[progress.length - 1].status).toBe('READY');
    orchids = ids[DOCUMENTS.findIndex((d) => d.title === 'Orchid care')].id;
  });

  const SEARCH = 'query($q: String!, $k: Int, $t: [String!]) { search(query: $q, k: $k, tags: $t) { score chunk { index heading text } document { id title tags } } }';

  it('finds the chunk that answers a question, with its score and document, best first', async () => {
    const res = await gql(stack.gatewayUrl, SEARCH, { q: 'How often do I water a phalaenopsis orchid?', k: 3 }, bearer(owner));
    expect(res.errors).toBeUndefined();
    const hits = res.data!.search as Array<{ score: number; chunk: { heading: string; text: string }; document: { id: string; title: string } }>;
    expect(hits).toHaveLength(3);
    expect(hits[0].document).toMatchObject({ id: orchids, title: 'Orchid care' });
    expect(hits[0].chunk.text).toMatch(/soaking the bark pot/);
    expect(hits[0].score).toBeGreaterThan(hits[2].score);
  });

  it('reaches recall@5 of at least 0.9 on the labelled questions', async () => {
    let found = 0;
    for (const { question, source } of QUESTIONS) {
      const res = await gql(stack.gatewayUrl, SEARCH, { q: question, k: 5 }, bearer(owner));
      const titles = (res.data!.search as Array<{ document: { title: string } }>).map((h) => h.document.title);
      if (titles.includes(source)) found += 1;
    }
    const recall = found / QUESTIONS.length;
    process.stdout.write(`knowledge search recall@5 on ${QUESTIONS.length} labelled questions: ${recall.toFixed(2)}\n`);
    expect(recall).toBeGreaterThanOrEqual(0.9);
  });

  it('keeps only documents carrying every listed tag', async () => {
    const res = await gql(stack.gatewayUrl, SEARCH, { q: 'fish hive honey aquarium', k: 10, t: ['animals', 'outdoors'] }, bearer(owner));
    expect(res.errors).toBeUndefined();
    const titles = new Set((res.data!.search as Array<{ document: { title: string } }>).map((h) => h.document.title));
    expect([...titles]).toEqual(['Beekeeping calendar']);
  });

  it("shows nothing of one user's documents to another, and answers guessed ids with NOT_FOUND", async () => {
    const stranger = await signUp('S');
    const res = await gql(stack.gatewayUrl, SEARCH, { q: 'How often do I water a phalaenopsis orchid?', k: 5 }, bearer(stranger));
    expect(res.data!.search).toEqual([]);
    const doc = await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { id } }', { d: orchids }, bearer(stranger));
    expect(doc.data!.document).toBeNull();
    const del = await gql(stack.gatewayUrl, 'mutation($d: ID!) { deleteDocument(id: $d) }', { d: orchids }, bearer(stranger));
    expect(del.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
    const client = wsClient(stack.gatewayUrl, stranger);
    const events = await collect(client, INGESTION, { d: orchids });
    await client.dispose();
    expect(events).toEqual([{ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'NOT_FOUND' }) })] }]);
  });

  it('refuses k out of range and an empty query with what was expected', async () => {
    const res = await gql(stack.gatewayUrl, SEARCH, { q: 'orchid', k: 0 }, bearer(owner));
    expect(res.errors?.[0]).toMatchObject({ message: 'search expects "k" between 1 and 50, but got 0', extensions: { code: 'BAD_USER_INPUT', field: 'k' } });
    const empty = await gql(stack.gatewayUrl, SEARCH, { q: '   ', k: 5 }, bearer(owner));
    expect(empty.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'query' } });
  });
});

describe('answers', () => {
  let owner: string;

  beforeAll(async () => {
    owner = await signUp();
    await Promise.all(DOCUMENTS.slice(0, 4).map((doc) => addAndIngest(owner, doc.title, doc.content, doc.tags)));
  });

  const ASK = `query($q: String!, $k: Int, $o: AnswerOptions) {
    ask(question: $q, k: $k, options: $o) { text grounded finishReason usage { promptTokens completionTokens } model { id } citations { number score chunk { text } document { title } } }
  }`;

  it('asks: answers from numbered sources and cites them', async () => {
    const res = await gql(stack.gatewayUrl, ASK, { q: 'When do I harvest honey from the hive?', k: 3, o: { maxTokens: 24, seed: 7 } }, bearer(owner));
    expect(res.errors).toBeUndefined();
    const answer = res.data!.ask;
    expect(answer.grounded).toBe(true);
    expect(answer.text.length).toBeGreaterThan(0);
    expect(['STOP', 'LENGTH']).toContain(answer.finishReason);
    expect(answer.usage.completionTokens).toBeGreaterThan(0);
    expect(answer.usage.promptTokens).toBeGreaterThan(50);
    expect(answer.model.id).toMatch(/^sluice-chat/);
    expect(answer.citations.length).toBeGreaterThan(0);
    expect(answer.citations[0]).toMatchObject({ number: 1, document: { title: 'Beekeeping calendar' } });
    expect(answer.citations.map((c: { number: number }) => c.number)).toEqual(answer.citations.map((_: unknown, i: number) => i + 1));
  });

  it('says so, and generates nothing, when no document is relevant', async () => {
    const newcomer = await signUp();
    const res = await gql(stack.gatewayUrl, ASK, { q: 'When do I harvest honey?', k: 3 }, bearer(newcomer));
    expect(res.errors).toBeUndefined();
    expect(res.data!.ask).toMatchObject({ grounded: false, citations: [], usage: null, model: null, finishReason: 'STOP' });
    expect(res.data!.ask.text).toMatch(/None of your documents/);
  });

  it('streams an answer: citations with the first event, text deltas, finishReason and usage last', async () => {
    const client = wsClient(stack.gatewayUrl, owner);
    const events = await collect(
      client,
      `subscription($q: String!) { answerStream(question: $q, k: 2, options: { maxTokens: 16, seed: 3 }) {
        index delta grounded finishReason usage { completionTokens } citations { number document { title } chunk { heading } } model { id }
      } }`,
      { q: 'Where should I place my wifi router?' },
    );
    await client.dispose();
    expect(events.every((e) => !e.errors)).toBe(true);
    const chunks = events.map((e) => e.data!.answerStream);
    expect(chunks[0].citations[0]).toMatchObject({ number: 1, document: { title: 'Home network setup' }, chunk: { heading: 'Home network setup > Router placement' } });
    expect(chunks.slice(1).every((c) => c.citations.length === 0)).toBe(true);
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    const last = chunks[chunks.length - 1];
    expect(['STOP', 'LENGTH']).toContain(last.finishReason);
    expect(last.usage.completionTokens).toBeGreaterThan(0);
    expect(chunks.slice(0, -1).every((c) => c.finishReason === null)).toBe(true);
  });
});

describe('deleteDocument', () => {
  it('removes the document, its chunks and its vectors from search', async () => {
    const token = await signUp();
    const { id } = await addAndIngest(token, DOCUMENTS[9].title, DOCUMENTS[9].content);
    const search = () => gql(stack.gatewayUrl, '{ search(query: "espresso grind finer", k: 5) { document { id } } }', {}, bearer(token));
    expect((await search()).data!.search.length).toBeGreaterThan(0);
    const del = await gql(stack.gatewayUrl, 'mutation($d: ID!) { deleteDocument(id: $d) }', { d: id }, bearer(token));
    expect(del.data!.deleteDocument).toBe(id);
    expect((await search()).data!.search).toEqual([]);
    const doc = await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { id } }', { d: id }, bearer(token));
    expect(doc.data!.document).toBeNull();
    const again = await gql(stack.gatewayUrl, 'mutation($d: ID!) { deleteDocument(id: $d) }', { d: id }, bearer(token));
    expect(again.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
  });
});

describe('identity forwarded to inference', () => {
  it("ingests with exactly the caller's rights: a key without inference:invoke gets its document FAILED, with the reason", async () => {
    const session = await signUp();
    const created = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "kb only", scopes: [KNOWLEDGE_READ, KNOWLEDGE_WRITE]) { secret } }', {}, bearer(session));
    const key = created.data!.createApiKey.secret as string;
    const { progress } = await addAndIngest(key, DOCUMENTS[0].title, DOCUMENTS[0].content);
    const last = progress[progress.length - 1];
    expect(last.status).toBe('FAILED');
    expect(last.reason).toMatch(/FORBIDDEN.*inference:invoke/);
    // The same key may not search either: the gateway refuses before anything is embedded.
    const search = await gql(stack.gatewayUrl, '{ search(query: "sourdough", k: 1) { score } }', {}, bearer(key));
    expect(search.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN', missingScopes: ['inference:invoke'] } });
  });
});

describe('identity on a long-lived WebSocket', () => {
  it('signs each subscription afresh, so an answer streamed long after the connection opened can still call inference', async () => {
    const token = await signUp();
    const { id } = await addAndIngest(token, DOCUMENTS[4].title, DOCUMENTS[4].content);
    const client = wsClient(stack.gatewayUrl, token);
    try {
      // Opens the gateway's upstream connection to knowledge, with an identity that lives 5 s (+5 s skew).
      expect((await collect(client, INGESTION, { d: id }))[0].data!.ingestion.status).toBe('READY');
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      const events = await collect(
        client,
        'subscription { answerStream(question: "How long should my marathon long run be?", k: 1, options: { maxTokens: 4 }) { delta finishReason error { code } citations { number } } }',
        {},
      );
      expect(events.every((e) => !e.errors)).toBe(true);
      const last = events[events.length - 1].data!.answerStream;
      expect(last.error).toBeNull();
      expect(['STOP', 'LENGTH']).toContain(last.finishReason);
      expect(events[0].data!.answerStream.citations).toEqual([{ number: 1 }]);
    } finally {
      await client.dispose();
    }
  }, 30_000);
});
