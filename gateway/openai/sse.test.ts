import { createServer } from 'node:http';
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
