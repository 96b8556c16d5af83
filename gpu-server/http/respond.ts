/** Writing responses: JSON bodies, Triton's `{"error": "…"}` errors, SSE events. */
import type * as http from 'node:http';
import { stringifyJson } from './json-tensors';

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  sendBody(res, status, Buffer.from(stringifyJson(value)), { 'content-type': 'application/json' });
}

export function sendBody(res: http.ServerResponse, status: number, body: Buffer, headers: http.OutgoingHttpHeaders): void {
  res.writeHead(status, { ...headers, 'content-length': body.length });
  res.end(body);
}

/** An empty answer (health, readiness, model control), typed JSON as Triton does. */
export function sendEmpty(res: http.ServerResponse, status: number): void {
  sendBody(res, status, Buffer.alloc(0), { 'content-type': 'application/json' });
}

export function sendError(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  sendBody(res, status, Buffer.from(JSON.stringify({ error: message })), { ...headers, 'content-type': 'application/json' });
}

export const SSE_HEADERS: http.OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
};

/** One Server-Sent Event carrying a JSON object, as Triton's generate_stream writes it. */
export function sseEvent(value: unknown): string {
  return `data: ${stringifyJson(value)}\n\n`;
}
