/**
 * Rate limits on subscriptions (graphql-ws and multipart HTTP alike): a live
 * stream takes one of the caller's `streams` slots in Redis, held by a lease
 * for as long as it lives, and its start counts as a request (and, for
 * `completionStream`, its `maxTokens`) like any operation. The token charge
 * is corrected at the end of the stream with the usage its last chunk
 * carried, when the client selected it (see `streamUsage`).
 */
import type { DocumentNode, GraphQLError } from 'graphql';
import type { GatewayContext } from '../auth/context';
import type { RateLimiter } from './limiter';
import { completionFields, maxTokensOf } from './operation-tokens';
import { takeStreamUsage } from './token-charge-correction';
import { variablesWithDefaults } from '../pipeline/operation-variables';

export interface AdmittedStream {
  /** Sees each event, for the real usage. */
  observe(event: { data?: Record<string, unknown> | null }): void;
  /** Frees the stream's slot and corrects its token charge; called once when the stream ends, however it ends. */
  end(): void;
}

/** The transports answer from the errors alone: their code gives the status, a RATE_LIMITED error's extensions the headers. */
export type StreamRefusal = { refused: GraphQLError[] };

export class SubscriptionGate {
  constructor(private readonly limiter: RateLimiter) {}

  async admit(context: GatewayContext, document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown>): Promise<AdmittedStream | StreamRefusal> {
    const { claims } = context.identity;
    const stream = await this.limiter.acquireStream(claims);
    if (!stream.admitted) return { refused: [stream.error] };
    const fields = completionFields(document, operationName);
    const values = variablesWithDefaults(document, operationName, variables);
    const admission = await this.limiter.admit(
      claims,
      fields.reduce((sum, field) => sum + maxTokensOf(field, values), 0),
    );
    if (!admission.admitted) {
      stream.lease.release();
      return { refused: [admission.error] };
    }
    const keys = fields.map((field) => field.alias?.value ?? field.name.value);
    let real: number | undefined;
    return {
      observe: (event) => {
        for (const key of keys) {
          const total = takeStreamUsage(event, key);
          if (total !== undefined) real = (real ?? 0) + total;
        }
      },
      end: () => {
        stream.lease.release();
        if (real !== undefined) void admission.tokens?.correct(real);
      },
    };
  }
}

export function isStreamRefusal(result: AdmittedStream | StreamRefusal): result is StreamRefusal {
  return 'refused' in result;
}
