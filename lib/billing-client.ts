import { Agent, request } from 'node:http';
import { codedError, ErrorCode } from './errors';
import { IDENTITY_HEADER } from './identity';

/**
 * What a service calls billing with before it spends a user's money: inference
 * reserves a completion's maximum cost before the GPU tier is called (DESIGN
 * §4: reserve, then settle; settlement follows from the usage event, see
 * lib/usage-events.ts). The caller's signed identity header is forwarded
 * unchanged: billing takes the user and API key from it, never from the body.
 */
export const RESERVATIONS_PATH = '/internal/reservations';

export interface ReserveRequest {
  /** A new UUID per request (randomUUID()); the usage event names it. A retry with the same id and request holds once. */
  reservationId: string;
  model: string;
  /** An upper estimate of the prompt's tokens (all priced as cache misses). */
  promptTokens: number;
  /** The most tokens the request may generate. */
  maxCompletionTokens: number;
}

export interface Reservation {
  reservationId: string;
  amountMicros: number;
  /** Epoch ms when billing's sweeper may release the hold if the request never settles. */
  expiresAt: number;
  state: 'held' | 'settled' | 'expired';
}

export interface BillingClientOptions {
  /** Billing's base URL, e.g. http://127.0.0.1:4002. */
  baseUrl: string;
  /** Per attempt. @default 2000 ms */
  timeoutMs?: number;
  /** Attempts when billing cannot be reached (safe: reservations are idempotent by id). @default 2 */
  attempts?: number;
}

/** Codes billing refuses a reservation with, re-raised as they are. */
const PASSED_THROUGH = new Set<string>([ErrorCode.InsufficientBalance, ErrorCode.SpendLimitExceeded, ErrorCode.ModelNotPriced, ErrorCode.BadUserInput, ErrorCode.Unauthenticated, ErrorCode.Conflict]);

export class BillingClient {
  private readonly url: URL;
  /** Keep-alive: a reservation precedes every completion, so its connection setup would be paid on each. */
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly options: BillingClientOptions) {
    this.url = new URL(RESERVATIONS_PATH, options.baseUrl);
  }

  /**
   * Holds the request's maximum cost. Throws a coded GraphQL error:
   * INSUFFICIENT_BALANCE {needed, available}, SPEND_LIMIT_EXCEEDED {period, cap,
   * spent, reserved, needed}, MODEL_NOT_PRICED, and SERVICE_UNAVAILABLE when
   * billing cannot be reached or fails — never let the request run unbilled.
   */
  async reserve(identityHeader: string, body: ReserveRequest): Promise<Reservation> {
    const payload = JSON.stringify(body);
    const attempts = this.options.attempts ?? 2;
    let lastProblem = '';
    let fresh = false;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let reply: { status: number; body: unknown };
      try {
        reply = await this.post(identityHeader, payload, fresh);
      } catch (error) {
        lastProblem = (error as Error).message;
        // The pooled connection broke (a billing replica lost under it): the pool's other idle ones may lead to the
        // same dead replica, so the next attempt opens its own, which a Service routes to a live replica.
        fresh = true;
        continue;
      }
      if (reply.status === 200) return reply.body as Reservation;
      const refusal = reply.body as { error?: string; code?: string; extensions?: Record<string, unknown> } | null;
      if (refusal?.code && refusal.error && PASSED_THROUGH.has(refusal.code)) throw codedError(refusal.code as ErrorCode, refusal.error, refusal.extensions);
      lastProblem = `HTTP ${reply.status}${refusal?.error ? `: ${refusal.error}` : ''}`;
      if (reply.status < 500) break;
    }
    throw codedError(ErrorCode.ServiceUnavailable, `billing could not reserve the request's cost (${lastProblem}), so the request was not run`, { service: 'billing' });
  }

  close(): void {
    this.agent.destroy();
  }

  /** One POST, on a pooled keep-alive connection, or on a connection of its own (`fresh`). */
  private post(identityHeader: string, payload: string, fresh: boolean): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.url,
        {
          method: 'POST',
          agent: fresh ? false : this.agent,
          timeout: this.options.timeoutMs ?? 2_000,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), [IDENTITY_HEADER]: identityHeader },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
            } catch {
              reject(new Error(`billing answered HTTP ${res.statusCode} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`billing did not answer within ${this.options.timeoutMs ?? 2_000} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
