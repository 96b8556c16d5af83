import { Agent, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SseWriter } from './sse';

it('writes data events, keep-alive comments while idle, and [DONE] last', async () => {
  const server = createServer((_, res) => {
    const sse = new SseWriter(res, 40);
    sse.send({ n: 1 });
    setTimeout(() => {
      sse.send({ n: 2 });
      sse.end();
      sse.send({ n: 3 }); // after the end: dropped
    }, 130);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const text = await response.text();
    expect(text.startsWith('data: {"n":1}\n\n: keep-alive\n\n: keep-alive\n\n')).toBe(true);
    expect(text.endsWith('data: {"n":2}\n\ndata: [DONE]\n\n')).toBe(true);
  } finally {
    server.close();
  }
});

it("keeps the connection for the next request, unless the server has said 'connection: close' (a draining service)", async () => {
  let draining = false;
  const server = createServer((_, res) => {
    if (draining) res.setHeader('connection', 'close');
    new SseWriter(res, 60_000).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new Agent({ keepAlive: true });
  const connectionHeader = () =>
    new Promise<string | undefined>((resolve, reject) => {
      get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { agent }, (response) => {
        response.resume();
        resolve(response.headers.connection);
      }).on('error', reject);
    });
  try {
    expect(await connectionHeader()).toBe('keep-alive');
    draining = true;
    expect(await connectionHeader()).toBe('close');
  } finally {
    agent.destroy();
    server.close();
  }
});
