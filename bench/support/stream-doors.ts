/**
 * The two doors a client streams a completion through, as bench/openai-api.ts
 * and bench/profile-streams.ts load them: /v1/chat/completions over SSE and
 * the `completionStream` subscription over graphql-ws. Both clients are lean
 * (node:http with a line parser over keep-alive connections, as curl would
 * read the stream; graphql-ws's own client), so the figures compare the
 * servers: the client shares the machine's two cores, and fetch's web
 * streams cost it several times what node:http does per chunk. Both hold
 * their connections between streams (HTTP keep-alive; the graphql-ws client
 * closes no idle socket).
 */
import { Agent, type IncomingMessage, request } from 'node:http';
import { wsClient } from '../../test/support/subscriptions';
import type { TestStack } from '../../test/support/stack';

const STREAM = 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta finishReason usage { completionTokens } } }';

export interface Round {
  tokens: number;
  seconds: number;
  ttftMs: number[];
  /** CPU time of this process (the client) during the round. */
  clientCpuMs: number;
}
/** What the benchmark reads of a chunk (or of the error event a stream may end with). */
interface SseChunk {
  choices: Array<{ delta: { content?: string } }>;
  usage?: { completion_tokens: number } | null;
  error?: unknown;
}

/** Reads an OpenAI SSE response: calls `onChunk` with each parsed `data:` event until `[DONE]`. */
async function readSse(response: IncomingMessage, onChunk: (chunk: SseChunk) => void): Promise<void> {
  response.setEncoding('utf8');
  if (response.statusCode !== 200) {
    let text = '';
    for await (const part of response) text += part;
    throw new Error(`/v1/chat/completions answered ${response.statusCode}: ${text}`);
  }
  // 'data' listeners rather than for-await, which costs promises per read, and leaving it early would destroy the
  // response and with it the keep-alive connection (every stream would pay a new one). Read to the end, as the
  // OpenAI SDKs do.
  return new Promise((resolve, reject) => {
    let buffered = '';
    let done = false;
    response.on('data', (text: string) => {
      buffered += text;
      try {
        for (let end = buffered.indexOf('\n\n'); end >= 0 && !done; end = buffered.indexOf('\n\n')) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue; // keep-alive comments
          const data = event.slice(6);
          if (data === '[DONE]') done = true;
          else {
            const chunk = JSON.parse(data) as SseChunk;
            if (chunk.error) throw new Error(`stream error: ${JSON.stringify(chunk.error)}`);
            onChunk(chunk);
          }
        }
      } catch (error) {
        response.destroy();
        reject(error);
      }
    });
    // 'close' too: a connection cut without an error must not leave the round waiting.
    const settle = () => (done ? resolve() : reject(new Error('the SSE stream ended without [DONE]')));
    response.on('end', settle);
    response.on('close', settle);
    response.on('error', reject);
  });
}

/** POSTs `body` as JSON on one of `agent`'s keep-alive connections; resolves with the response as its head arrives. */
function post(url: string, agent: Agent, headers: Record<string, string>, body: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, resolve);
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `streams` streams at once; each calls `chunk` per event with its text and,
 * on the last, the server-counted completion tokens.
 */
async function round(streams: number, run: (chunk: (text: string, completionTokens?: number) => void) => Promise<void>): Promise<Round> {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const ttft: number[] = [];
  let tokens = 0;
  await Promise.all(
    Array.from({ length: streams }, async () => {
      const t0 = performance.now();
      let first = true;
      await run((text, completionTokens) => {
        if (first && text) {
          ttft.push(performance.now() - t0);
          first = false;
        }
        tokens += completionTokens ?? 0;
      });
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return { tokens, seconds: (performance.now() - started) / 1000, ttftMs: ttft, clientCpuMs: (cpu.user + cpu.system) / 1000 };
}

export interface StreamDoors {
  /** `streams` concurrent streams through /v1/chat/completions (SSE). */
  sse(streams?: number): Promise<Round>;
  /** `streams` concurrent `completionStream` subscriptions on one graphql-ws connection. */
  graphqlWs(streams?: number): Promise<Round>;
  close(): Promise<void>;
}

/** Streams of `maxTokens` tokens of sluice-chat, no seed (so the response cache is bypassed), `streams` at once unless a round asks otherwise. */
export function streamDoors(stack: TestStack, token: string, load: { streams: number; maxTokens: number; messages: Array<{ role: string; content: string }> }): StreamDoors {
  const v1 = stack.gatewayUrl.replace(/\/graphql$/, '/v1');
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const ws = wsClient(stack.gatewayUrl, token, { keepOpen: true });
  const sseAgent = new Agent({ keepAlive: true, maxSockets: load.streams });
  return {
    sse: (streams = load.streams) =>
      round(streams, async (chunk) => {
        const body = { model: 'sluice-chat', messages: load.messages, max_tokens: load.maxTokens, temperature: 0.8, stream: true, stream_options: { include_usage: true } };
        const response = await post(`${v1}/chat/completions`, sseAgent, headers, JSON.stringify(body));
        await readSse(response, (c) => chunk(c.choices[0]?.delta.content ?? '', c.usage?.completion_tokens));
      }),
    graphqlWs: (streams = load.streams) =>
      round(streams, async (chunk) => {
        const input = { model: 'sluice-chat', messages: load.messages, maxTokens: load.maxTokens, temperature: 0.8 };
        for await (const event of ws.iterate<{ completionStream: { delta: string; usage: { completionTokens: number } | null } }>({ query: STREAM, variables: { i: input } })) {
          if (event.errors) throw new Error(JSON.stringify(event.errors));
          const { delta, usage } = event.data!.completionStream;
          chunk(delta, usage?.completionTokens);
        }
      }),
    close: async () => {
      sseAgent.destroy();
      await ws.dispose();
    },
  };
}
