import type { ApolloServerPlugin } from '@apollo/server';
import type { DocumentNode } from 'graphql';
import type { GatewayContext } from '../auth/context';
import { OperationState } from './operation-state';
import type { GatewayPipeline } from './pipeline';
import { serializedResults } from './serialized-results';

/**
 * The features as one Apollo Server plugin, for every operation Apollo Server
 * runs (HTTP, and queries and mutations over WebSocket). The source stage is
 * not here: it runs before Apollo Server parses (`http-source.ts`), since an
 * error thrown from Apollo's own pre-parse hook reaches the client as a 500.
 *
 * Being one plugin, the features' hooks run in the features' order, one
 * after the other (Apollo runs separate plugins' `didResolveOperation` at
 * once): a refused operation is not charged by the rate limiter, and the
 * metrics, last, record the outcome the others made. Once they are done with
 * a response, it is noted for `serializedResults`, whose bytes the HTTP
 * handler sends.
 */
export function apolloPlugin(pipeline: GatewayPipeline): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart({ contextValue }) {
      const state = new OperationState(contextValue, false);
      return {
        async didResolveOperation(requestContext) {
          state.document = requestContext.document;
          state.operation = requestContext.operation;
          state.operationName = requestContext.operationName;
          state.variables = requestContext.request.variables;
          state.schema = requestContext.schema;
          state.queryHash = requestContext.queryHash;
          const refused = await pipeline.operationDidResolve(state);
          // Apollo Server answers one thrown error; its extensions.http gives the status and headers.
          if (refused) throw refused[0];
          if (state.document !== requestContext.document) {
            // Apollo Server types these as read-only for plugins; replacing them before execution is what lets the gateway plan only what runs.
            const writable = requestContext as { document: DocumentNode; queryHash: string };
            writable.document = state.document;
            writable.queryHash = state.queryHash!;
          }
        },
        async responseForOperation(requestContext) {
          for (const feature of pipeline.responders) {
            const response = await feature.responseForOperation!(state, requestContext);
            if (response) return response;
          }
          return null;
        },
        async willSendResponse(requestContext) {
          for (const feature of pipeline.responseFinishers) await feature.responseWillSend!(state, requestContext);
          // The features are done with the result: the HTTP handler may now send bytes shared with other callers of the same execution.
          const { body } = requestContext.response;
          if (body.kind === 'single') serializedResults.willSend(contextValue.identity, body.singleResult);
        },
      };
    },
  };
}
