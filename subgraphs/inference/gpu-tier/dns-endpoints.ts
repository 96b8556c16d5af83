/**
 * GPU endpoints found through DNS, so that a Kubernetes headless Service (one
 * A/AAAA record per ready pod) can be the endpoint list: as pods come and go,
 * so do the tier's endpoints.
 *
 * An entry of the endpoint list (endpoint-list.ts) may name a DNS target in
 * gRPC's naming: `dns:///<name>:<port>` asks the system's DNS servers,
 * `dns://<server>[:<port>]/<name>:<port>` asks that server (for a resolver
 * outside resolv.conf, and for tests); `dns:<name>:<port>` is the short form.
 * The port is required: A records carry none, and gRPC's silent default (443)
 * is never a Triton's. Other entries are plain host:port addresses and pass
 * through unchanged, so both kinds mix in one list.
 *
 * Each name is resolved (A and AAAA, with node:dns's Resolver, not the
 * system's getaddrinfo, which consults no given server and has no timeout)
 * when it enters the list and then every `refreshMs`. An answer that lists
 * addresses replaces that name's addresses; a failure, a timeout or an
 * answer with no address keeps the last addresses it had, with a warning and
 * a count (`failures`, served at /metrics): a DNS hiccup must not empty the
 * tier. Resolutions run beside the requests, which use the list as it is; a
 * name still being resolved at the next tick is not asked again, so a server
 * that stops answering costs a few seconds of staleness and nothing else.
 * Until a name has resolved once it contributes no endpoint.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../../../lib/log';

/** A `dns:` entry of the endpoint list, taken apart. */
export interface DnsTarget {
  /** The entry as written: it names the target in logs and metrics. */
  entry: string;
  host: string;
  port: number;
  /** The DNS server to ask (ip or ip:port); the system's when absent. */
  server?: string;
}

const DNS_TARGET = /^dns:(?:\/\/([^/]*)\/)?([^/:\s[\]]+):(\d{1,5})$/;

export function isDnsTarget(entry: string): boolean {
  return entry.startsWith('dns:');
}

export function parseDnsTarget(entry: string): DnsTarget {
  const match = DNS_TARGET.exec(entry);
  if (!match) throw new TypeError(`a DNS target is expected as dns:///name:port or dns://dns-server[:port]/name:port, but got ${JSON.stringify(entry)}`);
  const [, server, host, port] = match;
  // node:dns takes a server as an address only (ip, ip:port, [ipv6]:port).
  const serverIp = !server || isIP(server) ? server : (/^\[(.+)\](?::\d{1,5})?$/.exec(server)?.[1] ?? server.replace(/:\d{1,5}$/, ''));
  if (serverIp && isIP(serverIp) === 0) {
    throw new TypeError(`the DNS server of ${JSON.stringify(entry)} is expected as an IP address with an optional :port, but got ${JSON.stringify(server)}`);
  }
  return { entry, host, port: Number(port), ...(server ? { server } : {}) };
}

export interface DnsEndpointsOptions {
  /** How often each name is resolved again. */
  refreshMs: number;
  log: Logger;
  /** Called with the whole list, plain addresses and resolved names in their order, whenever it changes. */
  onChange: (addresses: string[]) => void;
}

/** One DNS target of the list, and what it last resolved to. */
export interface DnsName {
  readonly target: DnsTarget;
  /** host:port of each address of the last answer that listed any; undefined until one did. */
  addresses: string[] | undefined;
  /** Resolutions that failed, timed out or listed no address (the last addresses were kept). */
  failures: number;
}

interface NameState extends DnsName {
  resolver: Resolver;
  resolving: Promise<void> | undefined;
  lastProblem: string | undefined;
}

/** Expands the `dns:` entries of an endpoint list into addresses, kept current; see the module comment. */
export class DnsEndpoints {
  private entries: string[] = [];
  private states = new Map<string, NameState>();
  private applied = '';
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: DnsEndpointsOptions) {
    this.timer = setInterval(() => void this.refresh(), options.refreshMs);
    this.timer.unref();
  }

  /** The DNS targets of the current list and what each resolved to. */
  get names(): readonly DnsName[] {
    return [...this.states.values()];
  }

  /** The list now: plain addresses as given, each name as its last resolved addresses. */
  get addresses(): string[] {
    const expanded = this.entries.flatMap((entry) => (isDnsTarget(entry) ? (this.states.get(entry)?.addresses ?? []) : [entry]));
    return [...new Set(expanded)];
  }

  /**
   * Makes `entries` the list (as parseEndpointList returns it). Names already
   * known keep their addresses; new ones are resolved at once (applied when
   * they answer); names no longer listed are forgotten.
   */
  setList(entries: readonly string[]): void {
    this.entries = [...entries];
    const next = new Map<string, NameState>();
    for (const entry of entries.filter(isDnsTarget)) next.set(entry, this.states.get(entry) ?? newState(parseDnsTarget(entry), this.options.refreshMs));
    for (const [entry, state] of this.states) if (!next.has(entry)) state.resolver.cancel();
    this.states = next;
    this.apply();
    for (const state of next.values()) if (!state.addresses) void this.resolve(state);
  }

  /** Resolves every name now (a name already being resolved is waited for, not asked twice); the list is applied as answers come. */
  async refresh(): Promise<void> {
    await Promise.all([...this.states.values()].map((state) => this.resolve(state)));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const state of this.states.values()) state.resolver.cancel();
  }

  private resolve(state: NameState): Promise<void> {
    state.resolving ??= lookUp(state.resolver, state.target.host)
      .then((found) => {
        if (found.length === 0) throw new Error('the answer lists no A or AAAA record');
        state.addresses = found.map((ip) => `${ip}:${state.target.port}`);
        if (state.lastProblem) this.options.log.info('the GPU endpoints name resolves again', { target: state.target.entry, addresses: state.addresses });
        state.lastProblem = undefined;
      })
      .catch((error: NodeJS.ErrnoException) => {
        if (this.closed || error.code === 'ECANCELLED') return;
        state.failures++;
        // Logged once per distinct problem: a dead DNS server would otherwise log every refresh.
        const problem = error.code ? `${error.code}: ${error.message}` : error.message;
        if (problem !== state.lastProblem) {
          this.options.log.warn('the GPU endpoints name could not be resolved; keeping its last addresses', { target: state.target.entry, kept: state.addresses ?? [], error: problem });
        }
        state.lastProblem = problem;
      })
      .finally(() => {
        state.resolving = undefined;
        if (!this.closed && this.states.get(state.target.entry) === state) this.apply();
      });
    return state.resolving;
  }

  private apply(): void {
    const addresses = this.addresses;
    const key = addresses.join(',');
    if (key === this.applied) return;
    this.applied = key;
    this.options.onChange(addresses);
  }
}

function newState(target: DnsTarget, refreshMs: number): NameState {
  // Bounded so that a silent server is given up on within about one refresh (two tries), not c-ares's default of four 5 s tries.
  const resolver = new Resolver({ timeout: Math.max(100, Math.min(2_000, Math.floor(refreshMs / 2))), tries: 2 });
  if (target.server) resolver.setServers([target.server]);
  return { target, resolver, addresses: undefined, failures: 0, resolving: undefined, lastProblem: undefined };
}

/** The name's IPv4 and IPv6 addresses (IPv6 in brackets, ready for host:port), sorted so that a rotated answer is no change. */
async function lookUp(resolver: Resolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.all([resolver.resolve4(host).catch(noRecords), resolver.resolve6(host).catch(noRecords)]);
  return [...v4.sort(), ...v6.sort().map((ip) => `[${ip}]`)];
}

/** "No such name" and "no record of this type" are answers (an empty one), not failures. */
function noRecords(error: NodeJS.ErrnoException): string[] {
  if (error.code === 'ENODATA' || error.code === 'ENOTFOUND') return [];
  throw error;
}
