/**
 * Server-Sent Events as OpenAI streams them: `data: <json>\n\n` per event,
 * written (and so flushed) at once, `: keep-alive` comments while nothing
 * else is written for `keepAliveMs`, and always `data: [DONE]` last, after
 * an error too.
 */
import type { ServerResponse } from 'node:http';

export class SseWriter {
  private idle: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    keepAliveMs: number,
    headers: Record<string, string> = {},
  ) {
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      // nginx and others buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    this.idle = setInterval(() => this.keepAlive(), keepAliveMs);
  }

  /** A comment: keeps proxies and clients from timing the stream out while nothing else is sent. */
  keepAlive(): void {
    if (!this.ended) this.res.write(': keep-alive\n\n');
  }

  send(event: unknown): void {
    this.sendSerialized(JSON.stringify(event));
  }

  /** An event already serialized as JSON. */
  sendSerialized(json: string): void {
    if (this.ended) return;
    this.idle.refresh();
    this.res.write(`data: ${json}\n\n`);
  }

  /** Ends the stream with `data: [DONE]` (once; a no-op when the client has gone). */
  end(): void {
    clearInterval(this.idle);
    if (this.ended) return;
    this.ended = true;
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }
}
