import type { Logger } from '../../lib/log';
import type { GatewayContext } from '../auth/context';

const loggers = new WeakMap<GatewayContext, Logger>();

/**
 * The logger for lines about one request: every line carries its
 * `requestId` and, once the trace context is set, its `traceId`, so a
 * request's lines can be found together and beside its subgraphs' traces.
 * Made on first use and kept with the context, so requests that log nothing
 * cost nothing.
 */
export function requestLog(log: Logger, context: GatewayContext): Logger {
  let child = loggers.get(context);
  if (!child) {
    child = log.child(requestFields(context));
    loggers.set(context, child);
  }
  return child;
}

/** `requestId` and `traceId` of a request, for a logger's fields. */
export function requestFields(context: GatewayContext): { requestId: string; traceId?: string } {
  // traceparent is `00-<traceId>-<spanId>-<flags>` (lib/trace-context.ts builds it).
  return context.traceparent ? { requestId: context.requestId, traceId: context.traceparent.slice(3, 35) } : { requestId: context.requestId };
}
