/**
 * Each execution's answer serialized once, however many callers receive it.
 * Deduplication (gateway/dedup) hands every caller of an identical query the
 * same `data` object; Apollo Server would serialize it again for each of them
 * (its `stringifyResult`), and the response cache once more to store it. Here
 * the JSON of a `data` object is made the first time anyone asks and kept
 * with the object (a WeakMap: it goes with the result), the response body of
 * a result that is only that data is made once too, and so are its bytes,
 * which the HTTP handler writes to every socket.
 *
 * What each caller receives is unchanged: a result with errors or extensions
 * of its own is written around the shared data's JSON, field for field as
 * Apollo Server orders and serializes it; headers are each response's own.
 * A request is known by an object that Apollo Server's plugins and the HTTP
 * handler both see: Apollo Server hands plugins a shallow copy of the
 * context (its `cloneObject`), never the handler's own, so the gateway keys
 * by the context's `identity`, which the copy shares and which is made for
 * each request (server.ts). Bytes go out only when the body is the very
 * text noted, so a key shared by mistake costs the saving, never a wrong answer.
 *
 * The one rule it relies on: a result's `data` is not edited after it is
 * first serialized. Features edit data only in `responseWillSend`, before
 * Apollo Server serializes it, and a narrowed document's result, which
 * authorization completes in place per caller, is never shared by dedup
 * (each caller gets its own copy).
 */
import type { FormattedExecutionResult } from 'graphql';

interface Serialized {
  json: string;
  /** `{"data":…}` and its bytes, for a result that is only data: what most callers of a shared execution get. */
  body?: string;
  bytes?: Buffer;
}

export class SerializedResults {
  private readonly byData = new WeakMap<object, Serialized>();
  /** The data each request is about to send alone (no errors, no extensions), by the request's key: the HTTP handler finds the bytes through it. */
  private readonly byRequest = new WeakMap<object, object>();

  /** `data` as JSON, made once per object (the response cache stores it; the response body contains it). */
  dataJson(data: object): string {
    return this.entry(data).json;
  }

  /** Takes `json` as the JSON of `data`, which was parsed from it (a response cache hit sends what it stored). */
  adopt(data: object, json: string): void {
    if (!this.byData.has(data)) this.byData.set(data, { json });
  }

  /** Apollo Server's `stringifyResult`: the same text as its own (`JSON.stringify` of errors, data, extensions, and a newline). */
  stringify = (result: FormattedExecutionResult): string => {
    if (!result.data) return `${JSON.stringify({ errors: result.errors, data: result.data, extensions: result.extensions })}\n`;
    const entry = this.entry(result.data);
    if (result.errors === undefined && result.extensions === undefined) {
      entry.body ??= `{"data":${entry.json}}\n`;
      return entry.body;
    }
    const errors = result.errors === undefined ? '' : `"errors":${JSON.stringify(result.errors)},`;
    const extensions = result.extensions === undefined ? '' : `,"extensions":${JSON.stringify(result.extensions)}`;
    return `{${errors}"data":${entry.json}${extensions}}\n`;
  };

  /** Notes the result a request will send (from the last hook before Apollo Server serializes it, if it does: nothing is serialized here). */
  willSend(request: object, result: FormattedExecutionResult): void {
    if (result.data && result.errors === undefined && result.extensions === undefined) this.byRequest.set(request, result.data);
    else this.byRequest.delete(request);
  }

  /**
   * The bytes of `body` when it is the shared body of the result this
   * request noted, made once for all its callers; else `body` itself (a
   * batch, a result with errors, anything changed after the note).
   */
  bytesFor(request: object, body: string): Buffer | string {
    const data = this.byRequest.get(request);
    const entry = data && this.byData.get(data);
    if (entry?.body !== body) return body;
    this.byRequest.delete(request);
    entry.bytes ??= Buffer.from(body);
    return entry.bytes;
  }

  private entry(data: object): Serialized {
    let entry = this.byData.get(data);
    if (!entry) {
      entry = { json: JSON.stringify(data) };
      this.byData.set(data, entry);
    }
    return entry;
  }
}

/** The process's one: Apollo Server's serializer, the adapter, the response cache and the HTTP handler must all see the same. */
export const serializedResults = new SerializedResults();
