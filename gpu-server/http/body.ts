/**
 * Request bodies: read with a size limit (checked against Content-Length
 * before reading, and again while reading for chunked bodies), and parsed as
 * JSON with errors that say what was expected and what the parser found.
 */
import type * as http from 'node:http';
import { invalidArgument } from '../core/errors';

/** A body larger than the limit: answered with 413 before it is read to the end. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new BodyTooLargeError(`request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLargeError(`request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

/**
 * Parses JSON text; malformed text is INVALID_ARGUMENT naming what was being
 * parsed, what was expected and what the parser found.
 */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw invalidArgument(`failed to parse the ${what}: expected a JSON document, got ${text.length === 0 ? 'an empty body' : `invalid JSON (${detail})`}`);
  }
}

/** The JSON value as an object, or INVALID_ARGUMENT saying what it was instead. */
export function expectObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(`${what} expects a JSON object, got ${jsonKind(value)}`);
  }
  return value as Record<string, unknown>;
}

/** `null`, `an array`, `string "abc"`, `number 3`…: what a JSON value is, for messages that say what was got. */
export function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}
