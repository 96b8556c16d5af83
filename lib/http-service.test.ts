import { Agent, request } from 'node:http';
import { createLogger } from './log';
import { HttpService } from './http-service';

const log = createLogger({ test: 'http-service' });
process.env.SLUICE_LOG_LEVEL = 'error';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (c: string) => (body += c))
        .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

describe('HttpService lifecycle', () => {
  it('answers /health 503 while starting and 200 once ready; /ready reflects dependency checks', async () => {
    let redisUp = false;
    const service = new HttpService({ name: 't', host: '127.0.0.1', port: 0, log, handle: (_q, r) => void r.end('ok'), checks: { redis: async () => redisUp } });
    const port = await service.listen();
    expect((await get(port, '/health')).status).toBe(503);
    service.markReady();
    expect((await get(port, '/health')).status).toBe(200);
    const notReady = await get(port, '/ready');
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body)).toMatchObject({ phase: 'ready', checks: { redis: false } });
    redisUp = true;
    expect((await get(port, '/ready')).status).toBe(200);
    await service.stop();
  });

  it('drains: an in-flight request completes, new connections are refused, then it stops', async () => {
    let release: () => void = () => undefined;
    let started: () => void = () => undefined;
    const handling = new Promise<void>((resolve) => {
      started = resolve;
    });
    const service = new HttpService({
      name: 't',
      host: '127.0.0.1',
      port: 0,
      log,
      handle: async (_req, res) => {
        const released = new Promise<void>((resolve) => {
          release = resolve;
        });
        started();
        await released;
        res.end('finished');
      },
    });
    const port = await service.listen();
    service.markReady();
    const inFlight = get(port, '/slow');
    // The drain starts once the request is in the handler: before that its socket is still idle, and a drain closes idle sockets.
    await handling;
    const stopped = service.stop();
    expect(service.phase).toBe('draining');
    await expect(get(port, '/health')).rejects.toThrow(/ECONNREFUSED/);
    release();
    expect(await inFlight).toEqual({ status: 200, body: 'finished' });
    await stopped;
    expect(service.phase).toBe('stopped');
  });

  it('drains on a signal without closing idle keep-alive connections: a request a client sends on one is answered, with Connection: close', async () => {
    const service = new HttpService({ name: 't', host: '127.0.0.1', port: 0, log, handle: (_q, r) => void r.end('ok') });
    const port = await service.listen();
    service.markReady();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const send = () =>
      new Promise<{ body: string; connection: string | undefined; reused: boolean }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/work', agent }, (res) => {
          let body = '';
          res
            .setEncoding('utf8')
            .on('data', (c: string) => (body += c))
            .on('end', () => resolve({ body, connection: res.headers.connection, reused: req.reusedSocket }));
        });
        req.on('error', reject).end();
      });
    expect(await send()).toEqual({ body: 'ok', connection: 'keep-alive', reused: false });
    // The client's connection is idle now; closing it at the drain's start would fail this next request.
    const stopped = service.stop({ leaveIdleConnections: true });
    expect(service.phase).toBe('draining');
    expect(await send()).toEqual({ body: 'ok', connection: 'close', reused: true });
    await stopped;
    expect(service.phase).toBe('stopped');
    agent.destroy();
  });

  it('does not wait forever for a request that never finishes', async () => {
    const service = new HttpService({ name: 't', host: '127.0.0.1', port: 0, log, drainTimeoutMs: 100, handle: () => new Promise(() => undefined) });
    const port = await service.listen();
    service.markReady();
    const hung = get(port, '/hang').catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await service.stop();
    expect(String(await hung)).toMatch(/socket hang up|ECONNRESET/);
  });
});
