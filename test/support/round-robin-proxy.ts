import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

/**
 * What a Kubernetes Service gives a client of several replicas, on loopback:
 * one address, each new TCP connection handed to the next replica in turn,
 * and a replica that refuses connections (killed, not yet listening) skipped
 * for the next one, as readiness takes a dead pod out of the endpoints. A
 * connection already open to a replica that dies is lost with it, as it is
 * behind a Service.
 */
export interface RoundRobinProxy {
  port: number;
  url(path?: string): string;
  /**
   * Sends no new connection to this backend (until `include`), as Kubernetes
   * takes a terminating pod out of its Service's endpoints before the pod's
   * SIGTERM is acted on (the preStop pause): a connection the kernel accepted
   * just before the replica closed its listener would otherwise be reset.
   */
  exclude(backendPort: number): void;
  include(backendPort: number): void;
  stop(): Promise<void>;
}

export async function startRoundRobinProxy(backendPorts: readonly number[]): Promise<RoundRobinProxy> {
  if (backendPorts.length === 0) throw new Error('a round-robin proxy expects at least one backend port, but got none');
  let next = 0;
  const excluded = new Set<number>();
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    const serving = backendPorts.filter((port) => !excluded.has(port));
    // With every backend excluded, each is tried all the same: better a refused connection than none.
    const candidates = serving.length > 0 ? serving : backendPorts;
    const first = next++ % candidates.length;
    const attempt = (tried: number) => {
      if (tried === candidates.length) return client.destroy();
      const upstream = connect(candidates[(first + tried) % candidates.length], '127.0.0.1');
      track(upstream);
      // Before 'connect', an error is the replica refusing the connection: try the next one.
      upstream.once('error', () => attempt(tried + 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    client.on('error', () => undefined);
    attempt(0);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (path = '') => `http://127.0.0.1:${port}${path}`,
    exclude: (backendPort) => excluded.add(backendPort),
    include: (backendPort) => excluded.delete(backendPort),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
