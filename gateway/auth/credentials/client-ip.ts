import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * The caller's address, for the identity's `ip` claim (per-IP login throttling).
 *
 * By default it is the TCP peer's address: `X-Forwarded-For` is whatever the
 * client chose to send, and trusting it would let anyone pick a fresh address
 * per attempt and walk past per-IP limits. Behind a reverse proxy or load
 * balancer every peer is the proxy, so with `trustProxy` (GATEWAY_TRUST_PROXY,
 * set only when such a proxy is the gateway's sole entrance) the address is the
 * *last* `X-Forwarded-For` entry: the one our proxy appended, naming whoever
 * connected to it. Earlier entries are the client's own claims and are ignored.
 */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const header = req.headers['x-forwarded-for'];
    const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').pop()?.trim();
    if (forwarded && isIP(forwarded)) return normalize(forwarded);
  }
  const peer = req.socket.remoteAddress;
  return peer ? normalize(peer) : undefined;
}

/** An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d`: one caller, one address. */
function normalize(ip: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? ip.slice(7) : ip;
}
