import type { IdentityClaims, IdentitySigner } from '../../lib/identity';
import { identityAudience } from '../../lib/service-calls';

/** What every operation through the gateway carries, over HTTP and WebSocket alike. */
export interface GatewayContext {
  identity: SignedIdentity;
  requestId: string;
  /**
   * W3C `traceparent` to send to subgraphs: the caller's trace continued, or a
   * new one (lib/trace-context.ts). The gateway always sets it; only tests of
   * other concerns leave it out.
   */
  traceparent?: string;
  /** The caller's W3C `tracestate`, to send on beside `traceparent`, when it sent one. */
  tracestate?: string;
}

/**
 * The caller's claims and their signed headers, one per subgraph. A
 * subscription can outlive one signature (60 s by default); the signer hands
 * out a header with at least half its lifetime left, so entity fetches made
 * for a late event still carry a valid identity, and the claims themselves
 * never change.
 */
export class SignedIdentity {
  constructor(
    readonly claims: IdentityClaims,
    private readonly signer: IdentitySigner,
  ) {}

  /** The header to send to `subgraph`: valid there and at the siblings it forwards it to, refused everywhere else. */
  header(subgraph: string, now = Date.now()): string {
    return this.signer.current(this.claims, identityAudience(subgraph), now);
  }
}
