import { RESERVATIONS_PATH } from '../../lib/billing-client';
import { ErrorCode } from '../../lib/errors';
import { type InternalRoute, RouteRefusal } from '../../lib/internal-routes';
import type { Ledger } from './ledger';

/**
 * The route behind lib/billing-client.ts, which inference calls before a completion starts:
 * `POST /internal/reservations` with the caller's signed identity header,
 * forwarded unchanged, and `{reservationId, model, promptTokens,
 * maxCompletionTokens}`. The user is the identity's `sub`, the API key its
 * `keyId`, so a caller can only ever hold its own money. No scope is asked
 * for: whether the caller may run the request is for the service that runs it
 * (knowledge's answers reach inference with a `knowledge:read` identity).
 *
 * 200 `{reservationId, amountMicros, expiresAt, state}`; a refusal carries the
 * code the client re-raises as a GraphQL error: INSUFFICIENT_BALANCE,
 * SPEND_LIMIT_EXCEEDED, MODEL_NOT_PRICED, CONFLICT, BAD_USER_INPUT,
 * UNAUTHENTICATED, SERVICE_UNAVAILABLE (Redis unreachable).
 */
export function reservationRoute(ledger: Ledger): InternalRoute {
  return {
    path: RESERVATIONS_PATH,
    body: '{reservationId, model, promptTokens, maxCompletionTokens}',
    unavailable: 'billing failed to reserve (its store may be unreachable); nothing was reserved',
    async handle(body, identity) {
      if (!identity.sub) throw new RouteRefusal(ErrorCode.Unauthenticated, `${RESERVATIONS_PATH} requires a signed-in caller, but the identity is anonymous`);
      return ledger.reserve({
        reservationId: body.reservationId as string,
        userId: identity.sub,
        keyId: identity.keyId ?? null,
        model: body.model as string,
        promptTokens: body.promptTokens as number,
        maxCompletionTokens: body.maxCompletionTokens as number,
      });
    },
  };
}
