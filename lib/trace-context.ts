/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) at the gateway:
 * a request's `traceparent` is continued when it is valid and a new trace is
 * started when it is absent or malformed, so every subgraph fetch and every
 * log line of a request carries one trace id. The gateway is a participant
 * of the trace: the `traceparent` it sends on names its own span, whose
 * parent is the caller's.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface TraceContext {
  /** 32 lowercase hex digits, the same for every participant of the trace. */
  traceId: string;
  /** The caller's span, when the request carried a valid `traceparent`. */
  parentId?: string;
  /** The gateway's span for this request (16 hex digits): the parent of its subgraph fetches. */
  spanId: string;
  /** Trace flags, two hex digits; `01` is sampled. */
  flags: string;
  /** The header the gateway sends on: `00-<traceId>-<spanId>-<flags>`. */
  traceparent: string;
  /** The caller's vendor state, passed on unchanged with a valid `traceparent`. */
  tracestate?: string;
}

/** The longest `tracestate` passed on; the specification asks participants to propagate at least this much. */
const MAX_TRACESTATE_CHARS = 512;
/**
 * A new trace is marked sampled: the gateway records no spans itself, so the
 * decision is left to whichever subgraph or collector does.
 */
const NEW_TRACE_FLAGS = '01';

const VERSION_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
// A later version may append fields after the four of version 00; only those four are read.
const LATER_VERSION = /^(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;
const ALL_ZEROS = /^0+$/;

/** The trace id, parent id and flags of a `traceparent` value, or undefined when it is not a valid one. */
export function parseTraceparent(value: string | undefined): { traceId: string; parentId: string; flags: string } | undefined {
  // Several traceparent headers arrive joined by commas, and fail the match: a new trace, as the specification asks.
  if (!value) return undefined;
  const header = value.trim();
  const match = header.startsWith('00-') ? VERSION_00.exec(header) : LATER_VERSION.exec(header);
  if (!match) return undefined;
  const [, traceId, parentId, flags] = match;
  if (ALL_ZEROS.test(traceId) || ALL_ZEROS.test(parentId)) return undefined;
  return { traceId, parentId, flags };
}

/** The trace context of a request: its caller's continued, or a new one. */
export function traceContextFor(req: { headers: IncomingHttpHeaders }): TraceContext {
  const parent = parseTraceparent(single(req.headers.traceparent));
  const spanId = randomHex(8);
  if (!parent) {
    const traceId = randomHex(16);
    return { traceId, spanId, flags: NEW_TRACE_FLAGS, traceparent: `00-${traceId}-${spanId}-${NEW_TRACE_FLAGS}` };
  }
  const tracestate = single(req.headers.tracestate)?.trim();
  return {
    traceId: parent.traceId,
    parentId: parent.parentId,
    spanId,
    flags: parent.flags,
    traceparent: `00-${parent.traceId}-${spanId}-${parent.flags}`,
    ...(tracestate && tracestate.length <= MAX_TRACESTATE_CHARS ? { tracestate } : {}),
  };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** Random bytes drawn 4 KiB at a time: one system call per request for a few ids cost more than the ids' use. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let used = 0;

function randomHex(bytes: number): string {
  let hex: string;
  do {
    if (used + bytes > pool.length) {
      pool = randomBytes(POOL_BYTES);
      used = 0;
    }
    hex = pool.toString('hex', used, used + bytes);
    used += bytes;
  } while (ALL_ZEROS.test(hex));
  return hex;
}
