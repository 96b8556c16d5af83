import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { webAppHandler } from './web-app-handler';

let root: string;
let server: Server;
let origin: string;
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});`;

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'sluice-web-app-'));
  mkdirSync(path.join(root, 'assets'));
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Sluice</title><script src="/app/assets/index-abc123.js"></script>');
  writeFileSync(path.join(root, 'assets', 'index-abc123.js'), SCRIPT);
  writeFileSync(path.join(root, 'robots.txt'), 'User-agent: *\n');
  writeFileSync(path.join(path.dirname(root), 'secret.txt'), 'outside the build');
  const handle = webAppHandler({ root });
  server = createServer((req, res) => {
    void handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404, { 'content-type': 'text/plain' }).end('not the app');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(root, { recursive: true, force: true });
  rmSync(path.join(path.dirname(root), 'secret.txt'), { force: true });
});

const get = (pathname: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'POST' = 'GET') => request(`${origin}${pathname}`, { method, headers });

describe('web app handler', () => {
  it('serves hashed assets as immutable for a year, gzipped when the client accepts it', async () => {
    const plain = await get('/app/assets/index-abc123.js');
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(await plain.body.text()).toBe(SCRIPT);

    const gzipped = await get('/app/assets/index-abc123.js', { 'accept-encoding': 'gzip, br' });
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    const body = Buffer.from(await gzipped.body.arrayBuffer());
    expect(body.length).toBeLessThan(SCRIPT.length / 10);
    expect(gunzipSync(body).toString()).toBe(SCRIPT);
  });

  it('answers every client route with index.html, revalidated on each load by its ETag', async () => {
    for (const route of ['/app/', '/app/chat', '/app/knowledge/documents/d1']) {
      const res = await get(route);
      expect([route, res.statusCode, res.headers['cache-control'], res.headers['content-type']]).toEqual([route, 200, 'no-cache', 'text/html; charset=utf-8']);
      expect(await res.body.text()).toContain('<title>Sluice</title>');
    }
    const first = await get('/app/chat');
    await first.body.dump();
    const again = await get('/app/account', { 'if-none-match': String(first.headers.etag) });
    expect(again.statusCode).toBe(304);
    await again.body.dump();
  });

  it('sends a content security policy that lets the page load nothing from elsewhere', async () => {
    const res = await get('/app/');
    await res.body.dump();
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('does not answer a missing asset or file with the page, which a browser would run as script', async () => {
    for (const missing of ['/app/assets/index-old999.js', '/app/favicon.ico']) {
      const res = await get(missing);
      expect([missing, res.statusCode]).toEqual([missing, 404]);
      expect(await res.body.text()).toBe(`no file ${missing} in the web app\n`);
    }
  });

  it('serves other files of the build for revalidation, and nothing outside the build', async () => {
    const robots = await get('/app/robots.txt');
    expect([robots.statusCode, robots.headers['cache-control']]).toEqual([200, 'no-cache']);
    await robots.body.dump();
    const outside = await get('/app/..%2fsecret.txt');
    expect(outside.statusCode).toBe(404);
    expect(await outside.body.text()).not.toContain('outside the build');
  });

  it('redirects /app to /app/, refuses writes, and leaves every other path to the gateway', async () => {
    const bare = await get('/app?x=1');
    expect([bare.statusCode, bare.headers.location]).toEqual([308, '/app/?x=1']);
    await bare.body.dump();
    const post = await get('/app/chat', {}, 'POST');
    expect([post.statusCode, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    await post.body.dump();
    for (const other of ['/graphql', '/application', '/']) {
      const res = await get(other);
      expect(await res.body.text()).toBe('not the app');
    }
  });

  it('says how to build the app when there is no build', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'sluice-web-app-empty-'));
    const handle = webAppHandler({ root: empty });
    const unbuilt = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => unbuilt.listen(0, '127.0.0.1', resolve));
    try {
      const res = await request(`http://127.0.0.1:${(unbuilt.address() as AddressInfo).port}/app/chat`);
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe(`the web app is not built (no ${path.join(empty, 'index.html')}): run npm run build:web, or npm start, which builds it\n`);
    } finally {
      await new Promise((resolve) => unbuilt.close(resolve));
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
