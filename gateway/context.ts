import type { IdentityClaims, IdentitySigner } from '../lib/identity';

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
 * The caller's claims and their signed header. A subscription can outlive
 * one signature (60 s by default), so the header is re-signed once it is past
 * half its lifetime: entity fetches made for a late event still carry a
 * valid identity, and the claims themselves never change.
 */
export class SignedIdentity {
  private signed: { header: string; at: number } | undefined;

  constructor(
    readonly claims: IdentityClaims,
    private readonly signer: IdentitySigner,
  ) {}

  header(now = Date.now()): string {
    if (!this.signed || now - this.signed.at > (this.signer.ttlSeconds * 1000) / 2) this.signed = { header: this.signer.sign(this.claims, now), at: now };
    return this.signed.header;
  }
}
