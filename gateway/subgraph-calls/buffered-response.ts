/**
 * A subgraph's answer, read to its end, in the shape Apollo's data sources
 * expect of a fetch response. A WHATWG `Response` would do, but building one
 * (a `Headers`, a `ReadableStream` over bytes already in memory) cost about a
 * twentieth of the gateway's CPU under load; this holds the bytes and decodes
 * them on demand. `clone()` shares the bytes, so deduplicated fetches hand
 * each caller its own response without copying the body.
 */
import type { FetcherHeaders, FetcherResponse } from '@apollo/utils.fetcher';

/** Response headers: names case-insensitive, repeated values joined with ", " (as the Fetch standard does). */
export class ResponseHeaders implements FetcherHeaders {
  private readonly byName = new Map<string, string>();

  /** From undici's raw headers (an array when the header was repeated). */
  static from(raw: Record<string, string | string[] | undefined>): ResponseHeaders {
    const headers = new ResponseHeaders();
    for (const [name, value] of Object.entries(raw)) {
      if (Array.isArray(value)) for (const one of value) headers.append(name, one);
      else if (value !== undefined) headers.append(name, value);
    }
    return headers;
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const existing = this.byName.get(key);
    this.byName.set(key, existing === undefined ? value : `${existing}, ${value}`);
  }
  delete(name: string): void {
    this.byName.delete(name.toLowerCase());
  }
  get(name: string): string | null {
    return this.byName.get(name.toLowerCase()) ?? null;
  }
  has(name: string): boolean {
    return this.byName.has(name.toLowerCase());
  }
  set(name: string, value: string): void {
    this.byName.set(name.toLowerCase(), value);
  }
  entries(): IterableIterator<[string, string]> {
    return this.byName.entries();
  }
  keys(): IterableIterator<string> {
    return this.byName.keys();
  }
  values(): IterableIterator<string> {
    return this.byName.values();
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.byName.entries();
  }
}

export class BufferedResponse implements FetcherResponse {
  readonly redirected = false;
  private used = false;

  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly headers: ResponseHeaders,
    private readonly body: Buffer,
    readonly url = '',
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  get bodyUsed(): boolean {
    return this.used;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = this.take();
    // A copy: the caller may write into it, and clones share these bytes.
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return this.take().toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  clone(): BufferedResponse {
    if (this.used) throw new TypeError('Response.clone: the body has already been read; clone before reading');
    return new BufferedResponse(this.status, this.statusText, this.headers, this.body, this.url);
  }

  private take(): Buffer {
    if (this.used) throw new TypeError('Body is unusable: the body has already been read; clone() the response to read it again');
    this.used = true;
    return this.body;
  }
}
