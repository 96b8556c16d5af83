/**
 * Which services a subgraph forwards the caller's signed identity to (DESIGN §4):
 * a service calling a sibling on the caller's behalf sends the header it
 * received, unchanged, so that header must name the sibling in its audience.
 * The gateway signs each subgraph's identity for the subgraph and everything
 * reachable from it here, and no further: a header taken from one subgraph is
 * refused by every service this graph does not lead to.
 */
export type ServiceName = 'auth' | 'billing' | 'knowledge' | 'inference';

export const FORWARDS_IDENTITY_TO: Readonly<Record<ServiceName, readonly ServiceName[]>> = {
  // Ingestion, search and answers embed and generate with inference's models, as the caller (knowledge/inference-client.ts).
  knowledge: ['inference'],
  // Every embedding and completion reserves its cost at billing's /internal/reservations, as the caller (usage-billing.ts).
  inference: ['billing'],
  // Auth and billing call no sibling.
  auth: [],
  billing: [],
};

const audiences = new Map<string, readonly string[]>();

/**
 * The audience of an identity the gateway sends to `service`: the service and
 * every service it forwards the identity to, transitively. A service this
 * graph does not list (a test's subgraph) forwards to none. The same frozen
 * array is returned for a service every time (the signer keys its memo on it).
 */
export function identityAudience(service: string): readonly string[] {
  let audience = audiences.get(service);
  if (!audience) {
    const reached = new Set<string>([service]);
    for (const name of reached) {
      if (Object.hasOwn(FORWARDS_IDENTITY_TO, name)) for (const next of FORWARDS_IDENTITY_TO[name as ServiceName]) reached.add(next);
    }
    audience = Object.freeze([...reached]);
    audiences.set(service, audience);
  }
  return audience;
}
