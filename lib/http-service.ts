import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, Server as NetServer } from 'node:net';
import { ErrorCode, httpStatusFor } from './errors';
import type { Logger } from './log';
import { exitOnSignals } from './signals';

/**
 * The lifecycle every Sluice HTTP service shares: explicit phases, `/health`
 * and `/ready` probes, and a drain on SIGTERM that lets in-flight requests
 * finish before the process exits.
 *
 * - `starting`: listening, but `/health` and `/ready` answer 503.
 * - `ready`: `/health` 200; `/ready` 200 when every dependency check passes.
 * - `draining`: no new connections; `/ready` 503 so load balancers move away;
 *   in-flight requests run to completion (up to `drainTimeoutMs`). A drain
 *   on a signal also leaves idle keep-alive connections to their clients
 *   (see `drain`).
 * - `stopped`: the server is closed and `onStop` has run.
 */
export type ServicePhase = 'starting' | 'ready' | 'draining' | 'stopped';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HttpServiceOptions {
  name: string;
  host: string;
  port: number;
  log: Logger;
  /** Handles every request that is not a probe. */
  handle: RequestHandler;
  /**
   * Dependency checks for `/ready`, by name (for example `redis`, `gpu`). Called
   * on every probe; a check that throws counts as failed.
   * @default no checks
   */
  checks?: Record<string, () => Promise<boolean>>;
  /**
   * How long a drain waits for in-flight requests before closing their sockets.
   * @default 10000 ms
   */
  drainTimeoutMs?: number;
  /**
   * Called when draining starts, alongside the wait for in-flight requests:
   * long-lived streams (WebSocket subscriptions) finish here within `timeoutMs`.
   */
  onDrain?: (timeoutMs: number) => Promise<void>;
  /** Called once after the server has closed: release connections, stop timers. */
  onStop?: () => Promise<void>;
}

export class HttpService {
  readonly server: Server;
  private currentPhase: ServicePhase = 'starting';
  private inFlight = 0;
  private idle: (() => void) | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: HttpServiceOptions) {
    this.server = createServer((req, res) => void this.dispatch(req, res));
    // Keep-alive sockets outlive requests; they must not hold a drain open.
    this.server.keepAliveTimeout = 5_000;
  }

  get phase(): ServicePhase {
    return this.currentPhase;
  }

  /** Starts listening; resolves with the bound port (useful when `port` is 0). */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Marks the service ready: call it once everything `/health` promises is loaded. */
  markReady(): void {
    if (this.currentPhase === 'starting') this.currentPhase = 'ready';
  }

  /**
   * Drains and stops. Idle keep-alive connections are closed at once unless
   * `leaveIdleConnections` (see `drain`): a caller that owns the clients (a
   * test, an embedding process) need not wait for their keep-alive timers.
   */
  stop(options: { leaveIdleConnections?: boolean } = {}): Promise<void> {
    this.stopping ??= this.drain(options.leaveIdleConnections ?? false);
    return this.stopping;
  }

  /** Stops on SIGTERM/SIGINT, leaving idle keep-alive connections to their clients, and exits the process once drained. */
  stopOnSignals(): void {
    exitOnSignals(
      this.options.log,
      () => this.stop({ leaveIdleConnections: true }),
      () => ({ inFlight: this.inFlight }),
    );
  }

  /**
   * Stops accepting connections and lets requests in flight finish. A signal
   * comes from an orchestrator rolling the service while clients it does not
   * know hold keep-alive connections to it. Closing their idle ones now (what
   * http.Server's close does) loses any request a client is writing onto one
   * at that instant: a query can be retried, a mutation cannot, since it may
   * have run. So a drain on a signal stops listening with net.Server's close,
   * which leaves open connections be: each idle one either carries one more
   * request, answered with `Connection: close`, or is closed by its client's
   * keep-alive timer (shorter than this server's `keepAliveTimeout`, which
   * the client hears in the `Keep-Alive` header) or by ours. The drain
   * timeout bounds both waits.
   */
  private async drain(leaveIdleConnections: boolean): Promise<void> {
    this.currentPhase = 'draining';
    const close = leaveIdleConnections ? NetServer.prototype.close : this.server.close;
    const closed = new Promise<void>((resolve) => close.call(this.server, () => resolve()));
    const timeout = this.options.drainTimeoutMs ?? 10_000;
    const streams = this.options.onDrain?.(timeout);
    // Every connection closed covers the requests in flight and the idle connections left to their clients.
    const settled = leaveIdleConnections ? closed : this.inFlight > 0 ? new Promise<void>((resolve) => (this.idle = resolve)) : undefined;
    if (settled) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout).unref()))]);
      clearTimeout(timer);
    }
    await streams;
    this.server.closeAllConnections();
    await closed;
    await this.options.onStop?.();
    this.currentPhase = 'stopped';
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') return this.health(res);
    if (req.method === 'GET' && path === '/ready') return this.ready(res);
    this.inFlight++;
    res.once('close', () => {
      if (--this.inFlight === 0) this.idle?.();
    });
    if (this.currentPhase === 'draining') res.setHeader('connection', 'close');
    try {
      await this.options.handle(req, res);
    } catch (error) {
      this.options.log.error('request failed', { error, path });
      if (!res.headersSent) sendJson(res, httpStatusFor(ErrorCode.InternalServerError), { errors: [{ message: 'internal server error', extensions: { code: ErrorCode.InternalServerError } }] });
      else res.destroy();
    }
  }

  private health(res: ServerResponse): void {
    const ok = this.currentPhase === 'ready' || this.currentPhase === 'draining';
    // The pid tells replicas and workers apart, e.g. which gateway worker answered.
    sendJson(res, ok ? 200 : 503, { service: this.options.name, phase: this.currentPhase, pid: process.pid });
  }

  private async ready(res: ServerResponse): Promise<void> {
    const checks: Record<string, boolean> = {};
    await Promise.all(
      Object.entries(this.options.checks ?? {}).map(async ([name, check]) => {
        checks[name] = await check().catch(() => false);
      }),
    );
    const ok = this.currentPhase === 'ready' && Object.values(checks).every(Boolean);
    sendJson(res, ok ? 200 : 503, { service: this.options.name, phase: this.currentPhase, checks });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
