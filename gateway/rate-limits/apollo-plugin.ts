/**
 * Rate limits on every operation Apollo Server runs — HTTP (persisted
 * queries included) and queries and mutations over WebSocket — at
 * `didResolveOperation`, once the document is known, so requests and the
 * completion tokens (`maxTokens`) are decided together, in one script. A
 * refusal is RATE_LIMITED with HTTP 429, `Retry-After` and the RateLimit
 * headers (SERVICE_UNAVAILABLE, 503, when Redis is away and the limiter fails
 * closed); an admitted response carries the RateLimit headers too. The price
 * of deciding there rather than before parsing: a refused request has been
 * parsed and validated (cached for a repeated document; bounded in size by the
 * operation limits).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { HeaderMap } from '@apollo/server';
import type { GatewayContext } from '../auth/context';
import { rateLimitHeaders } from './headers';
import type { Quota, RateLimiter } from './limiter';
import { completionTokens } from './operation-tokens';
import type { UsageMeter } from './token-charge-correction';
import { variablesWithDefaults } from '../pipeline/operation-variables';

export function rateLimitPlugin(limiter: RateLimiter, usage: UsageMeter): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      let quota: Quota | undefined;
      let sent = false;
      return {
        async didResolveOperation({ document, operationName, request, contextValue }) {
          const admission = await limiter.admit(contextValue.identity.claims, completionTokens(document, operationName, variablesWithDefaults(document, operationName, request.variables)));
          if (!admission.admitted) {
            const headers = new HeaderMap(Object.entries(rateLimitHeaders(admission.quota, admission.retryAfter)));
            admission.error.extensions.http = { status: admission.status, headers };
            throw admission.error;
          }
          quota = admission.quota;
          // Apollo runs every plugin's didResolveOperation at once: when another refused the operation (limits,
          // cost), its response may be out before this admission returns. Nothing ran, so no token is charged.
          if (sent) await admission.tokens?.correct(0);
          else if (admission.tokens) usage.expect(contextValue, admission.tokens);
        },
        async willSendResponse({ response, contextValue }) {
          sent = true;
          for (const [name, value] of Object.entries(rateLimitHeaders(quota))) response.http.headers.set(name, value);
          await usage.settle(contextValue);
        },
      };
    },
  };
}
