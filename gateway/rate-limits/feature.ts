/**
 * Rate limits on every operation, once it is resolved, so requests and the
 * completion tokens (`maxTokens`) are decided together, in one script:
 *
 * - what Apollo Server runs (HTTP, persisted queries included, and queries
 *   and mutations over WebSocket) is admitted by the limiter; a refusal is
 *   RATE_LIMITED with HTTP 429, `Retry-After` and the RateLimit headers
 *   (SERVICE_UNAVAILABLE, 503, when Redis is away and the limiter fails
 *   closed); an admitted response carries the RateLimit headers too, and its
 *   token charge is corrected when it is sent (`token-charge-correction.ts`);
 * - a subscription takes one of the caller's stream slots besides
 *   (`subscription-gate.ts`), held until it ends, and is planned with its
 *   usage selected so its charge is corrected from its last event.
 *
 * The price of deciding there rather than before parsing: a refused request
 * has been parsed and validated (cached for a repeated document; bounded in
 * size by the operation limits).
 */
import { HeaderMap } from '@apollo/server';
import type { FieldNode } from 'graphql';
import { DocumentMemo } from '../../lib/document-memo';
import { type ErrorCode, httpStatusFor } from '../../lib/errors';
import type { GatewayFeature } from '../pipeline/feature';
import { StateKey } from '../pipeline/operation-state';
import { variablesWithDefaults } from '../pipeline/operation-variables';
import { rateLimitHeaders } from './headers';
import type { Quota, RateLimiter } from './limiter';
import { completionFields, tokensOf } from './operation-tokens';
import { isStreamRefusal, SubscriptionGate, type AdmittedStream } from './subscription-gate';
import { withStreamUsage, type TokenChargeCorrection } from './token-charge-correction';

const QUOTA = new StateKey<Quota>('rate limits: quota');
const STREAM = new StateKey<AdmittedStream>('rate limits: stream');

export function rateLimits(limiter: RateLimiter, corrections: TokenChargeCorrection): GatewayFeature {
  const gate = new SubscriptionGate(limiter);
  // The completion fields depend only on the document and the operation name: found once, not walked per request.
  const completions = new DocumentMemo<FieldNode[]>();
  return {
    name: 'rate limits',
    async operationDidResolve(operation) {
      const { document, operationName, variables, context } = operation;
      if (operation.subscription) {
        const admitted = await gate.admit(context, document, operationName, variables ?? {});
        if (isStreamRefusal(admitted)) return admitted.refused;
        operation.set(STREAM, admitted);
        operation.replaceDocument(withStreamUsage(document), operation.queryHash);
        return undefined;
      }
      const fields = completions.get(undefined, document, operationName ?? '', () => completionFields(document, operationName));
      // Without a completion field the charge is 0 whatever the variables: they are not read.
      const tokens = fields.length ? tokensOf(fields, variablesWithDefaults(document, operationName, variables)) : 0;
      const admission = await limiter.admit(context.identity.claims, tokens);
      if (!admission.admitted) {
        const status = httpStatusFor(admission.error.extensions.code as ErrorCode);
        admission.error.extensions.http = { status, headers: new HeaderMap(Object.entries(rateLimitHeaders(admission.quota, admission.retryAfter))) };
        return [admission.error];
      }
      operation.set(QUOTA, admission.quota);
      if (admission.tokens) corrections.expect(context, admission.tokens);
      return undefined;
    },
    async responseWillSend(operation, { response }) {
      for (const [name, value] of Object.entries(rateLimitHeaders(operation.get(QUOTA)))) response.http.headers.set(name, value);
      await corrections.settle(operation.context);
    },
    eventWillSend(operation, event) {
      operation.get(STREAM)?.observe(event);
      return event;
    },
    subscriptionDidEnd(operation) {
      operation.get(STREAM)?.end();
    },
  };
}
