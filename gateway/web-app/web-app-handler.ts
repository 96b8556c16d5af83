import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * Serves the built web app (web/dist) under /app/, beside GraphQL and Sandbox.
 *
 * Caching follows Vite's output: files under assets/ carry a content hash in
 * their names, so they are `immutable` for a year; index.html names the
 * current hashes, so it is `no-cache` (revalidated by ETag on every load) and
 * a new build reaches browsers on their next visit. Any other path under
 * /app/ without a file extension is a client route (/app/chat,
 * /app/knowledge/documents/…) and gets index.html, so reloading or sharing
 * any page works. Text files are gzipped once and kept in memory with their
 * mtime; the whole app is a few hundred kilobytes.
 */
/** Where `npm run build:web` (and `npm start`) put the build: web/dist. */
export const WEB_APP_BUILD = path.resolve(__dirname, '..', '..', 'web', 'dist');

export interface WebAppOptions {
  /** The build to serve (Vite's outDir). @default WEB_APP_BUILD */
  root?: string;
  /** Where the app lives on the gateway. @default '/app' */
  basePath?: string;
}

/** Answers a request for the app and returns true, or returns false for any path outside it. */
export type WebAppHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt']);

/**
 * The app talks only to its own origin (HTTP and WebSocket), draws its chart
 * on a canvas, and renders Markdown to escaped HTML: nothing else may run or load.
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface CachedFile {
  mtimeMs: number;
  body: Buffer;
  gzipped?: Buffer;
  etag: string;
}

export function webAppHandler(options: WebAppOptions = {}): WebAppHandler {
  const base = (options.basePath ?? '/app').replace(/\/+$/, '');
  const root = path.resolve(options.root ?? WEB_APP_BUILD);
  const cache = new Map<string, CachedFile>();

  const load = async (file: string): Promise<CachedFile | undefined> => {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const cached = cache.get(file);
    if (cached?.mtimeMs === info.mtimeMs) return cached;
    const body = await readFile(file);
    const entry: CachedFile = {
      mtimeMs: info.mtimeMs,
      body,
      gzipped: COMPRESSIBLE.has(path.extname(file)) && body.length > 1024 ? gzipSync(body) : undefined,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    };
    cache.set(file, entry);
    return entry;
  };

  const send = (req: IncomingMessage, res: ServerResponse, file: string, entry: CachedFile, cacheControl: string): void => {
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': cacheControl,
      etag: entry.etag,
      vary: 'accept-encoding',
    };
    if (req.headers['if-none-match'] === entry.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    const gzip = entry.gzipped && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? entry.gzipped! : entry.body;
    res.writeHead(200, { ...headers, ...(gzip ? { 'content-encoding': 'gzip' } : {}), 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return false;
    if (url.pathname === base) {
      res.writeHead(308, { location: `${base}/${url.search}` }).end();
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end(`${req.method} is not allowed on ${url.pathname}: the web app is read with GET\n`);
      return true;
    }

    let relative: string;
    try {
      relative = decodeURIComponent(url.pathname.slice(base.length + 1));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(`${url.pathname} is not a valid path: its percent-encoding is broken\n`);
      return true;
    }
    const file = path.resolve(root, relative);
    if (file !== root && !file.startsWith(`${root}${path.sep}`)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no file ${url.pathname} in the web app\n`);
      return true;
    }

    const asset = relative.startsWith('assets/');
    const found = relative === '' ? undefined : await load(file);
    if (found) {
      send(req, res, file, found, asset ? IMMUTABLE : REVALIDATE);
      return true;
    }
    // A missing hashed asset (an old build's) or file must not be answered with the page: the browser would run HTML as script.
    if (asset || path.extname(relative) !== '') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': REVALIDATE }).end(`no file ${url.pathname} in the web app\n`);
      return true;
    }
    const indexFile = path.join(root, 'index.html');
    const index = await load(indexFile);
    if (!index) {
      res
        .writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': REVALIDATE })
        .end(`the web app is not built (no ${indexFile}): run npm run build:web, or npm start, which builds it\n`);
      return true;
    }
    send(req, res, indexFile, index, REVALIDATE);
    return true;
  };
}
